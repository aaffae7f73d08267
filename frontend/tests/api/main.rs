mod assets;
mod health;
mod helpers;
mod page;
