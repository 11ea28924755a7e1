//! Reads kept within an API's request-rate bucket.
//!
//! ELBv2 throttles each account's `Describe*` requests per region with a token
//! bucket: 40 at once, then 10 a second (the Elastic Load Balancing guide's "Request
//! throttling"). A plan reads the listeners of every load balancer (ELBv2 lists them
//! one load balancer at a time) and the tags of 20 at a time, so a region with 100
//! load balancers sends over 100 reads at once. Sent together, most would be refused,
//! the SDK's three attempts and its retry quota would run out, and the plan would
//! fail. Paced, each read waits for its token: the plan takes longer and succeeds.
//! Others share the account's bucket (the console, other tools), so the SDK's retries
//! stay on for what pacing cannot know.

use std::time::{Duration, Instant};

/// A token bucket: `burst` requests at once, then `per_second`.
#[derive(Debug)]
pub struct Pace {
    burst: f64,
    per_second: f64,
    bucket: std::sync::Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left; below zero, the requests already promised a later token.
    tokens: f64,
    at: Instant,
}

/// strata's rate of ELBv2 reads, refilling a bucket of four seconds' worth: 80% of
/// what ELBv2 allows (32 at once, then 8 a second), so that a paced plan stays
/// inside the bucket despite the moments requests take to arrive, and leaves room
/// for others reading the same account (the console, other tools).
/// `STRATA_ELB_READS_PER_SECOND` sets another (an account whose limit AWS raised),
/// `0` none.
pub const ELB_READS_PER_SECOND: u32 = 8;

/// The ELBv2 read rate: `STRATA_ELB_READS_PER_SECOND`, or the documented default.
pub fn elb_reads_per_second() -> u32 {
    std::env::var("STRATA_ELB_READS_PER_SECOND")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ELB_READS_PER_SECOND)
}

impl Pace {
    /// `per_second` a second after a burst of four seconds' worth, as ELBv2's bucket;
    /// `None` for 0 (no pacing).
    pub fn per_second(per_second: u32) -> Option<Pace> {
        (per_second > 0).then(|| {
            let per_second = f64::from(per_second);
            Pace {
                burst: 4.0 * per_second,
                per_second,
                bucket: std::sync::Mutex::new(Bucket {
                    tokens: 4.0 * per_second,
                    at: Instant::now(),
                }),
            }
        })
    }

    /// Waits for this request's token.
    pub async fn take(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the next token for a request made at `now`: how long it must wait for it.
    fn reserve(&self, now: Instant) -> Duration {
        let mut bucket = self.bucket.lock().expect("a pace's bucket");
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst) - 1.0;
        bucket.at = bucket.at.max(now);
        match bucket.tokens {
            t if t >= 0.0 => Duration::ZERO,
            t => Duration::from_secs_f64(-t / self.per_second),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(d: Duration) -> u64 {
        (d.as_secs_f64() * 1000.0).round() as u64
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        let pace = Pace::per_second(10).expect("paced");
        let now = pace.bucket.lock().unwrap().at;
        let waits: Vec<u64> = (0..60).map(|_| millis(pace.reserve(now))).collect();
        // 40 at once, then one every 100 ms: the 60th two seconds in.
        assert!(waits[..40].iter().all(|&w| w == 0), "{waits:?}");
        assert_eq!(waits[40], 100);
        assert_eq!(waits[59], 2000);
    }

    #[test]
    fn the_bucket_refills_while_idle_up_to_its_burst() {
        let pace = Pace::per_second(10).expect("paced");
        let start = pace.bucket.lock().unwrap().at;
        for _ in 0..40 {
            pace.reserve(start);
        }
        // Half a second later, 5 tokens are back.
        let later = start + Duration::from_millis(500);
        let waits: Vec<u64> = (0..6).map(|_| millis(pace.reserve(later))).collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 100]);
        // A minute idle fills it to its burst, no more.
        let idle = later + Duration::from_secs(60);
        let waits: Vec<u64> = (0..41).map(|_| millis(pace.reserve(idle))).collect();
        assert!(waits[..40].iter().all(|&w| w == 0), "{waits:?}");
        assert_eq!(waits[40], 100);
    }

    #[test]
    fn zero_is_no_pacing() {
        assert!(Pace::per_second(0).is_none());
    }
}
