//! How many live (Server-Sent Events) streams may be open, per user and per instance, and how often each
//! re-checks its caller ([`super::live`] does the re-check). Each open stream holds a connection and a task.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use uuid::Uuid;

use super::{ApiError, ErrorCode};
use crate::telemetry::events::LiveStream;

/// The caps on open streams and how often they re-check their caller.
#[derive(Debug)]
pub struct LiveStreams {
    per_user: usize,
    per_instance: usize,
    pub recheck: Duration,
    /// Open streams by user (a user's entry goes with their last stream).
    open: Mutex<HashMap<Uuid, usize>>,
}

/// One open stream, counted until it is dropped (the stream ends, or its client goes).
#[derive(Debug)]
pub struct Opened {
    streams: Arc<LiveStreams>,
    user: Uuid,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
        LiveStream::Closed.emit();
    }
}

impl LiveStreams {
    pub fn new(per_user: usize, per_instance: usize, recheck: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_user,
            per_instance,
            recheck,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new stream of `user`, or refuses it (`RATE_LIMITED`) past a cap.
    pub fn open(self: &Arc<Self>, user: Uuid) -> Result<Opened, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = open.get(&user).copied().unwrap_or(0);
        let refusal = if mine >= self.per_user {
            Some(format!(
                "You have {mine} live streams open; at most {} are allowed.",
                self.per_user
            ))
        } else if total >= self.per_instance {
            Some("This instance serves as many live streams as it can; retry shortly.".to_owned())
        } else {
            None
        };
        if let Some(message) = refusal {
            LiveStream::Refused.emit();
            return Err(ApiError::new(ErrorCode::RateLimited, message).with_retry_after(Duration::from_secs(5)));
        }
        *open.entry(user).or_default() += 1;
        LiveStream::Opened.emit();
        Ok(Opened {
            streams: self.clone(),
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_per_user_and_per_instance_and_counted_until_dropped() {
        let streams = LiveStreams::new(2, 3, Duration::from_secs(5));
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let a1 = streams.open(alice).unwrap();
        let _a2 = streams.open(alice).unwrap();
        assert!(streams.open(alice).is_err(), "a third stream of one user");
        let _b1 = streams.open(bob).unwrap();
        assert!(streams.open(bob).is_err(), "a fourth stream of the instance");
        drop(a1);
        let _b2 = streams.open(bob).expect("a closed stream frees its place");
    }
}
