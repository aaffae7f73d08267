//! What the authentication service's handlers share: made once at start-up, handed to every
//! worker.

use crate::password::PasswordHasher;
use crate::store::UserStore;
use crate::tokens::TokenSigner;

pub struct AppState {
    /// The `users` table, through the connection pool.
    pub store: UserStore,
    /// bcrypt off the async workers, bounded.
    pub hasher: PasswordHasher,
    /// Signs the access token of each login; serves the JWKS.
    pub tokens: TokenSigner,
}
