//! The payloads version moves travel in between instances (PostgreSQL `NOTIFY`): sent after
//! the commit by `signals::announce`, read by `signals::remote`.

use super::keys::CATALOG_SHARDS;
use super::shared::Moved;
use crate::ids::UserId;

/// The notification channel version moves are announced on.
pub const CHANNEL: &str = "subscriptions_cache_versions";

/// Users per notification: a payload must stay under PostgreSQL's 8,000 bytes, and an entry
/// is at most 41 bytes (two 19-digit numbers, a colon, a space).
const USERS_PER_NOTIFICATION: usize = 150;

/// `moved` as notification payloads: `c<shard>.<version>` per catalog shard, `a<version>` for all
/// users, `<user>:<version>` per user, separated by spaces.
pub fn encode(moved: &Moved) -> Vec<String> {
    let mut head = Vec::new();
    for (shard, version) in &moved.catalog {
        head.push(format!("c{shard}.{version}"));
    }
    if let Some(version) = moved.all_users {
        head.push(format!("a{version}"));
    }
    let mut payloads = Vec::new();
    let mut chunks = moved.users.chunks(USERS_PER_NOTIFICATION);
    let first: Vec<String> = chunks
        .next()
        .unwrap_or_default()
        .iter()
        .map(|(user, version)| format!("{}:{version}", user.0))
        .collect();
    head.extend(first);
    if !head.is_empty() {
        payloads.push(head.join(" "));
    }
    for chunk in chunks {
        payloads.push(
            chunk
                .iter()
                .map(|(user, version)| format!("{}:{version}", user.0))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    payloads
}

/// The inverse of [`encode`] for one payload; `None` for anything else.
pub fn decode(payload: &str) -> Option<Moved> {
    let mut moved = Moved::default();
    for part in payload.split_whitespace() {
        if let Some(shard) = part.strip_prefix('c') {
            // `c<version>` without a shard is the single row of earlier releases: shard 0.
            let (shard, version) = shard.split_once('.').unwrap_or(("0", shard));
            let shard: u16 = shard.parse().ok()?;
            if shard >= CATALOG_SHARDS {
                return None;
            }
            moved.catalog.push((shard, version.parse().ok()?));
        } else if let Some(version) = part.strip_prefix('a') {
            moved.all_users = Some(version.parse().ok()?);
        } else {
            let (user, version) = part.split_once(':')?;
            moved
                .users
                .push((UserId(user.parse().ok()?), version.parse().ok()?));
        }
    }
    moved.catalog.sort_unstable();
    Some(moved)
}

#[cfg(test)]
mod tests {
    use super::{decode, encode, Moved};
    use crate::ids::UserId;

    #[test]
    fn notifications_carry_every_move_within_the_payload_limit() {
        let moved = Moved {
            catalog: vec![(3, 41), (15, u64::MAX / 2)],
            all_users: None,
            users: (0..1_000)
                .map(|n| (UserId(i64::MAX - n), u64::MAX - 7))
                .collect(),
        };
        let payloads = encode(&moved);
        assert!(
            payloads.iter().all(|p| p.len() < 8_000),
            "PostgreSQL's limit"
        );
        let mut back = Moved::default();
        for payload in &payloads {
            let part = decode(payload).expect("decodes");
            back.catalog.extend(part.catalog);
            back.all_users = back.all_users.or(part.all_users);
            back.users.extend(part.users);
        }
        assert_eq!(back, moved);
        assert_eq!(
            decode("c2.9 c1 a2 3:4"),
            Some(Moved {
                // Sorted by shard; a bare `c` is the one row of earlier releases.
                catalog: vec![(0, 1), (2, 9)],
                all_users: Some(2),
                users: vec![(UserId(3), 4)]
            })
        );
        assert_eq!(decode("x"), None);
        assert_eq!(decode("c16.1"), None, "no such shard");
        assert!(encode(&Moved::default()).is_empty());
    }
}
