//! What the instances of one deployment share beyond the database: the tenants' rate limits ([`limits`], in
//! Redis) and the changes that make each instance's copies stale ([`changes`], on NATS). The signing keys
//! every instance must agree on are checked by [`crate::auth::signers`].

pub mod changes;
pub mod limits;

pub use changes::{Change, Changes};
pub use limits::RedisLimits;

use std::sync::Arc;

/// This instance's end of what the fleet shares.
#[derive(Clone)]
pub struct Fleet {
    pub changes: Changes,
    pub limits: Arc<RedisLimits>,
}

impl Fleet {
    pub fn new(messaging: crate::messaging::Messaging, redis: crate::cache::Redis, key_prefix: &str) -> Self {
        Self {
            changes: Changes::new(messaging),
            limits: Arc::new(RedisLimits::new(redis, key_prefix)),
        }
    }
}
