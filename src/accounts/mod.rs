//! The account use cases, above the repositories and the token and session machinery they combine:
//!
//! - [`sign_in`]: sign-in, refresh (rotation with reuse detection), sign-out, sign-out everywhere, password
//!   change — what the `/auth` routes call;
//! - [`operator`]: what an operator runs from the command line: the first super admin and the demo tenant.

pub mod operator;
pub mod sign_in;

pub use operator::{CreateAccountError, DemoSetup, DemoUser, create_super_admin, demo_setup};
