//! Authentication and authorization. Passwords live here from the start (the CLI creates accounts); JWT
//! sessions and role checks arrive with the identity issue.

pub mod password;
