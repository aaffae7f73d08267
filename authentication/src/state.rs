//! What the authentication service's handlers share: made once at start-up, handed to every
//! worker.

use crate::password::PasswordHasher;
use crate::store::UserStore;

pub struct AppState {
    /// The `users` table, through the connection pool.
    pub store: UserStore,
    /// bcrypt off the async workers, bounded.
    pub hasher: PasswordHasher,
}
