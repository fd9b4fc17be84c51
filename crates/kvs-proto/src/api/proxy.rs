//! The client proxy's methods (port 7000+id): the frontend's `put` and `get`,
//! forwarded unchanged.

pub use super::frontend::{Get, Put};
