//! Throttling of password guessing and account creation (counted with `governor`).
//!
//! - Failed logins: 5 a minute per account name (compared case-insensitively, like
//!   usernames) and 20 a minute per client address. Successful logins cost nothing, so many
//!   people behind one address can still sign in.
//! - Signups: `SIGNUPS_PER_IP_PER_HOUR` per client address (default 30).
//!
//! Beyond a limit a request is refused before any password is hashed: `429`, `Retry-After`
//! and a message that says when to try again. The client address is the connection's peer,
//! or — behind a reverse proxy — the configured trusted header only (`TRUSTED_PROXY_HEADER`,
//! e.g. `X-Forwarded-For`, whose last entry is the one the proxy added).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::header::HeaderName;
use axum::http::request::Parts;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use app::error::AppError;

const FAILED_LOGINS_PER_ACCOUNT_PER_MINUTE: u32 = 5;
const FAILED_LOGINS_PER_IP_PER_MINUTE: u32 = 20;
pub const DEFAULT_SIGNUPS_PER_IP_PER_HOUR: u32 = 30;

/// The request's client address, as far as this server can trust it.
#[derive(Clone, Debug)]
pub struct ClientAddress {
    trusted_header: Option<HeaderName>,
}

impl ClientAddress {
    pub fn new(trusted_header: Option<HeaderName>) -> Self {
        ClientAddress { trusted_header }
    }

    /// `None` only when neither the header nor the connection names one (a server started
    /// without connection info); such requests share one bucket.
    pub fn of(&self, parts: &Parts) -> Option<IpAddr> {
        match &self.trusted_header {
            Some(name) => parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                // The proxy's own entry only: anything before it the client may have sent.
                .next_back()
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok()),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        }
    }
}

/// Counts failures of one kind per key; once a key is over its limit, attempts are refused
/// until the limit lets one through again. Only failures count, so a pre-check must not
/// spend anything: `governor` counts, and the instant a key may try again is kept beside it.
struct FailureLimit<K: Hash + Eq + Clone + Send + Sync + 'static> {
    failures: DefaultKeyedRateLimiter<K>,
    refused_until: mini_moka::sync::Cache<K, Instant>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> FailureLimit<K> {
    /// `limit` failures per `period`: the limit-th failure inside the period refuses the next
    /// attempt.
    fn new(limit: u32, period: Duration) -> Self {
        let burst = NonZeroU32::new(limit.saturating_sub(1).max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period / limit.max(1))
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(burst);
        FailureLimit {
            failures: RateLimiter::keyed(quota),
            refused_until: mini_moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(period)
                .build(),
        }
    }

    /// How long `key` must still wait, if it must.
    fn wait(&self, key: &K) -> Option<Duration> {
        let until = self.refused_until.get(key)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    fn record_failure(&self, key: &K) {
        if let Err(not_until) = self.failures.check_key(key) {
            let wait = not_until.wait_time_from(self.failures.clock().now());
            self.refused_until
                .insert(key.clone(), Instant::now() + wait);
        }
    }

    fn forget_idle(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
    }
}

/// Every throttle of the server, shared by the account routes.
pub struct Throttle {
    pub client: ClientAddress,
    logins_by_account: FailureLimit<String>,
    logins_by_address: FailureLimit<Option<IpAddr>>,
    signups_by_address: DefaultKeyedRateLimiter<Option<IpAddr>>,
}

impl Throttle {
    pub fn new(client: ClientAddress, signups_per_ip_per_hour: u32) -> Self {
        let signups = NonZeroU32::new(signups_per_ip_per_hour).unwrap_or(NonZeroU32::MIN);
        Throttle {
            client,
            logins_by_account: FailureLimit::new(
                FAILED_LOGINS_PER_ACCOUNT_PER_MINUTE,
                Duration::from_secs(60),
            ),
            logins_by_address: FailureLimit::new(
                FAILED_LOGINS_PER_IP_PER_MINUTE,
                Duration::from_secs(60),
            ),
            signups_by_address: RateLimiter::keyed(Quota::per_hour(signups)),
        }
    }

    /// Before checking a password: refused while the account or the address is over its
    /// limit of failed logins.
    pub fn login_allowed(&self, username: &str, address: Option<IpAddr>) -> Result<(), AppError> {
        let account = self.logins_by_account.wait(&account_key(username));
        let from_address = self.logins_by_address.wait(&address);
        match account.max(from_address) {
            None => Ok(()),
            Some(wait) => Err(throttled("Too many failed logins", wait)),
        }
    }

    pub fn login_failed(&self, username: &str, address: Option<IpAddr>) {
        self.logins_by_account
            .record_failure(&account_key(username));
        self.logins_by_address.record_failure(&address);
    }

    /// Before creating an account (and hashing its password): counts the attempt.
    pub fn signup_allowed(&self, address: Option<IpAddr>) -> Result<(), AppError> {
        self.signups_by_address
            .check_key(&address)
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.signups_by_address.clock().now());
                throttled("Too many accounts were created from your address", wait)
            })
    }

    /// Drops the state of keys that have not been seen for a while (memory stays bounded).
    pub fn forget_idle(&self) {
        self.logins_by_account.forget_idle();
        self.logins_by_address.forget_idle();
        self.signups_by_address.retain_recent();
        self.signups_by_address.shrink_to_fit();
    }
}

/// Usernames are unique regardless of letter case, so their failures are counted that way.
fn account_key(username: &str) -> String {
    username.to_lowercase()
}

fn throttled(what: &str, wait: Duration) -> AppError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let when = if seconds < 120 {
        format!("{seconds} seconds")
    } else {
        format!("{} minutes", seconds.div_ceil(60))
    };
    AppError::Throttled {
        message: format!("{what}. Please try again in {when}."),
        retry_after_seconds: seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    const ELSEWHERE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));

    fn throttle() -> Throttle {
        Throttle::new(ClientAddress::new(None), 3)
    }

    #[test]
    fn the_fifth_failure_of_an_account_refuses_the_next_attempt_whatever_the_address() {
        let t = throttle();
        for n in 0..FAILED_LOGINS_PER_ACCOUNT_PER_MINUTE {
            assert!(t.login_allowed("Alice", HOME).is_ok(), "attempt {n}");
            t.login_failed("alice", if n % 2 == 0 { HOME } else { ELSEWHERE });
        }
        let refused = t.login_allowed("ALICE", ELSEWHERE);
        match refused {
            Err(AppError::Throttled {
                message,
                retry_after_seconds,
            }) => {
                assert!(message.contains("try again in"), "{message}");
                assert!((1..=60).contains(&retry_after_seconds));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            t.login_allowed("bob", ELSEWHERE).is_ok(),
            "other accounts go on"
        );
    }

    #[test]
    fn an_address_is_refused_after_twenty_failures_across_accounts() {
        let t = throttle();
        for n in 0..FAILED_LOGINS_PER_IP_PER_MINUTE {
            let name = format!("user{n}");
            assert!(t.login_allowed(&name, HOME).is_ok(), "attempt {n}");
            t.login_failed(&name, HOME);
        }
        assert!(t.login_allowed("fresh", HOME).is_err());
        assert!(t.login_allowed("fresh", ELSEWHERE).is_ok());
    }

    #[test]
    fn successful_logins_cost_nothing() {
        let t = throttle();
        for _ in 0..100 {
            assert!(t.login_allowed("carol", HOME).is_ok());
        }
    }

    #[test]
    fn signups_are_counted_per_address() {
        let t = throttle();
        for _ in 0..3 {
            assert!(t.signup_allowed(HOME).is_ok());
        }
        let refused = t.signup_allowed(HOME);
        assert!(
            matches!(&refused, Err(AppError::Throttled { retry_after_seconds, .. }) if *retry_after_seconds > 60),
            "{refused:?}"
        );
        assert!(t.signup_allowed(ELSEWHERE).is_ok());
    }

    #[test]
    fn a_trusted_header_names_the_client_only_when_configured() {
        let request = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 192.0.2.200")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        let peer = ClientAddress::new(None);
        assert_eq!(peer.of(&parts), Some(IpAddr::from([127, 0, 0, 1])));
        let proxied = ClientAddress::new(Some(HeaderName::from_static("x-forwarded-for")));
        assert_eq!(proxied.of(&parts), Some(IpAddr::from([192, 0, 2, 200])));
    }
}
