//! One file per endpoint.

mod assets;
mod index;

pub use assets::{ASSETS, Asset, asset};
pub use index::index;
