//! The payloads version moves travel in between instances (PostgreSQL `NOTIFY`): sent after
//! the commit by `signals::announce`, read by `signals::remote`.

use super::keys::CATALOG_SHARDS;
use super::shared::{Moved, Shards};
use crate::ids::{TopicId, UserId};
use crate::live::Count;

/// The notification channel version moves are announced on.
pub const CHANNEL: &str = "subscriptions_cache_versions";

/// What a payload may hold: PostgreSQL's limit is 8,000 bytes.
const PAYLOAD_BYTES: usize = 7_900;
/// The longest entry of a user: a 19-digit id, a colon, a 20-digit version, a space.
const USER_ENTRY_BYTES: usize = 41;
/// Users per notification, when nothing else shares it.
const USERS_PER_NOTIFICATION: usize = PAYLOAD_BYTES / USER_ENTRY_BYTES;

/// Counts and flags a notification carries at most (an entry is at most 60 bytes: 64 of them
/// and every shard twice take under 5,000 bytes, the users the rest); past them the change is
/// told without them (other instances' pages refetch).
const TOLD_PER_NOTIFICATION: usize = 64;

/// What a committed change of subscriptions says beyond its version moves, for the other
/// instances' open pages to patch: the catalog as its transaction saw it right after its own
/// move (every shard), the new subscriber counts, and the users' new subscribed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    pub seen: Shards,
    pub counts: Vec<(TopicId, Count)>,
    pub flags: Vec<(UserId, TopicId, bool)>,
}

/// `moved` as notification payloads: `c<shard>.<version>` per catalog shard, `a<version>` for all
/// users, `<user>:<version>` per user, separated by spaces; with `told`, also `s<shard>.<version>`
/// per shard the transaction saw, `n<topic>.<count>.<count version>` per count and
/// `f<user>.<topic>.<0 or 1>` per flag, in the first payload.
pub fn encode(moved: &Moved, told: Option<&Told>) -> Vec<String> {
    let mut head = Vec::new();
    for (shard, version) in &moved.catalog {
        head.push(format!("c{shard}.{version}"));
    }
    if let Some(told) =
        told.filter(|told| told.counts.len() + told.flags.len() <= TOLD_PER_NOTIFICATION)
    {
        for (shard, version) in &told.seen {
            head.push(format!("s{shard}.{version}"));
        }
        for (topic, count) in &told.counts {
            head.push(format!(
                "n{}.{}.{}",
                topic.0, count.subscribers, count.version
            ));
        }
        for (user, topic, subscribed) in &told.flags {
            head.push(format!("f{}.{}.{}", user.0, topic.0, u8::from(*subscribed)));
        }
    }
    if let Some(version) = moved.all_users {
        head.push(format!("a{version}"));
    }
    // The first payload takes the users its other entries leave room for.
    let head_bytes: usize = head.iter().map(|entry| entry.len() + 1).sum();
    let room = PAYLOAD_BYTES.saturating_sub(head_bytes) / USER_ENTRY_BYTES;
    let first = room.min(USERS_PER_NOTIFICATION).min(moved.users.len());
    let user = |(user, version): &(UserId, u64)| format!("{}:{version}", user.0);
    head.extend(moved.users[..first].iter().map(user));
    let mut payloads = Vec::new();
    if !head.is_empty() {
        payloads.push(head.join(" "));
    }
    for chunk in moved.users[first..].chunks(USERS_PER_NOTIFICATION) {
        payloads.push(chunk.iter().map(user).collect::<Vec<_>>().join(" "));
    }
    payloads
}

/// The inverse of [`encode`] for one payload; `None` for anything else.
pub fn decode(payload: &str) -> Option<Moved> {
    decode_told(payload).map(|(moved, _)| moved)
}

/// [`decode`], with what the change told beyond its moves, if it did (a complete catalog as
/// its transaction saw it, and counts).
pub fn decode_told(payload: &str) -> Option<(Moved, Option<Told>)> {
    let mut moved = Moved::default();
    let mut seen = Shards::new();
    let mut counts = Vec::new();
    let mut flags = Vec::new();
    // Counts without their version (`n<topic>.<count>`, an earlier release's) cannot be
    // placed among others: the change is then told as a bare version.
    let mut unversioned = false;
    let shard_of = |text: &str| -> Option<u16> {
        let shard: u16 = text.parse().ok()?;
        (shard < CATALOG_SHARDS).then_some(shard)
    };
    for part in payload.split_whitespace() {
        if let Some(shard) = part.strip_prefix('c') {
            // `c<version>` without a shard is the single row of earlier releases: shard 0.
            let (shard, version) = shard.split_once('.').unwrap_or(("0", shard));
            moved
                .catalog
                .push((shard_of(shard)?, version.parse().ok()?));
        } else if let Some(shard) = part.strip_prefix('s') {
            let (shard, version) = shard.split_once('.')?;
            seen.push((shard_of(shard)?, version.parse().ok()?));
        } else if let Some(count) = part.strip_prefix('n') {
            let (topic, count) = count.split_once('.')?;
            let topic = TopicId(topic.parse().ok()?);
            match count.split_once('.') {
                Some((subscribers, version)) => counts.push((
                    topic,
                    Count {
                        subscribers: subscribers.parse().ok()?,
                        version: version.parse().ok()?,
                    },
                )),
                None => {
                    let _: i64 = count.parse().ok()?;
                    unversioned = true;
                }
            }
        } else if let Some(flag) = part.strip_prefix('f') {
            let mut fields = flag.split('.');
            let (Some(user), Some(topic), Some(subscribed), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return None;
            };
            let subscribed = match subscribed {
                "1" => true,
                "0" => false,
                _ => return None,
            };
            flags.push((
                UserId(user.parse().ok()?),
                TopicId(topic.parse().ok()?),
                subscribed,
            ));
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
    seen.sort_unstable();
    let told = (!seen.is_empty() && !counts.is_empty() && !unversioned).then_some(Told {
        seen,
        counts,
        flags,
    });
    Some((moved, told))
}

#[cfg(test)]
mod tests {
    use super::{decode, decode_told, encode, Moved, Told};
    use crate::ids::{TopicId, UserId};
    use crate::live::Count;

    #[test]
    fn notifications_carry_every_move_within_the_payload_limit() {
        let moved = Moved {
            catalog: vec![(3, 41), (15, u64::MAX / 2)],
            all_users: None,
            users: (0..1_000)
                .map(|n| (UserId(i64::MAX - n), u64::MAX - 7))
                .collect(),
        };
        let payloads = encode(&moved, None);
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
        assert!(encode(&Moved::default(), None).is_empty());
    }

    #[test]
    fn a_change_of_subscriptions_tells_what_its_transaction_saw_and_the_new_counts() {
        let moved = Moved {
            catalog: vec![(2, 10)],
            all_users: None,
            users: vec![(UserId(7), 3)],
        };
        let told = Told {
            seen: (0..16)
                .map(|shard| (shard, 10 + u64::from(shard)))
                .collect(),
            counts: vec![(
                TopicId(5),
                Count {
                    subscribers: 12,
                    version: 40,
                },
            )],
            flags: vec![
                (UserId(7), TopicId(5), true),
                (UserId(7), TopicId(6), false),
            ],
        };
        let payloads = encode(&moved, Some(&told));
        assert_eq!(payloads.len(), 1);
        assert_eq!(decode_told(&payloads[0]), Some((moved.clone(), Some(told))));
        assert_eq!(decode(&payloads[0]), Some(moved.clone()));
        // Too many counts for one payload: told as the moves alone.
        let many = Told {
            seen: vec![(0, 1)],
            counts: (0..1_000).map(|t| (TopicId(t), Count::default())).collect(),
            flags: vec![],
        };
        let payloads = encode(&moved, Some(&many));
        assert!(payloads.iter().all(|p| p.len() < 8_000));
        assert_eq!(decode_told(&payloads[0]), Some((moved.clone(), None)));
        // An earlier release's counts, without their versions: the moves alone.
        assert_eq!(
            decode_told("c2.10 s2.10 n5.12"),
            Some((moved_catalog(), None))
        );
        assert_eq!(decode_told("c2.10 s2.10 n5.12.x"), None);
        assert_eq!(
            decode_told("c2.10 s2.10 n5.12.40 f7.5.2"),
            None,
            "a flag is 0 or 1"
        );
    }

    fn moved_catalog() -> Moved {
        Moved {
            catalog: vec![(2, 10)],
            all_users: None,
            users: vec![],
        }
    }

    #[test]
    fn the_largest_told_change_fits_one_payload() {
        let moved = Moved {
            catalog: (0..16).map(|shard| (shard, u64::MAX)).collect(),
            all_users: None,
            users: (0..150).map(|n| (UserId(i64::MAX - n), u64::MAX)).collect(),
        };
        let told = Told {
            seen: (0..16).map(|shard| (shard, u64::MAX)).collect(),
            counts: (0..60)
                .map(|t| {
                    let count = Count {
                        subscribers: i64::MAX,
                        version: i64::MAX,
                    };
                    (TopicId(i64::MAX - t), count)
                })
                .collect(),
            flags: (0..4)
                .map(|t| (UserId(i64::MAX), TopicId(i64::MAX - t), true))
                .collect(),
        };
        let payloads = encode(&moved, Some(&told));
        assert!(
            payloads.iter().all(|p| p.len() < 8_000),
            "PostgreSQL's limit"
        );
        let Some((mut back, Some(told_back))) = decode_told(&payloads[0]) else {
            panic!("the counts are in the first payload");
        };
        assert_eq!(told_back, told);
        for payload in &payloads[1..] {
            back.users.extend(decode(payload).expect("decodes").users);
        }
        assert_eq!(back, moved, "the users that did not fit follow");
    }
}
