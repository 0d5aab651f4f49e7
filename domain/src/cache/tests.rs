//! The topic cache: fills, refused fills, invalidations, patches and expiry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::keys::{ALL_USERS_KEY, CATALOG_KEY};
use super::*;
use crate::ids::{TopicId, UserId};
use crate::live::{Count, LiveEvent};

fn count(subscribers: i64, version: i64) -> Count {
    Count {
        subscribers,
        version,
    }
}

fn catalog(names: &[&str]) -> Catalog {
    Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(i, name)| CatalogEntry {
                id: TopicId(i as i64 + 1),
                name: (*name).into(),
                count: Count::default(),
            })
            .collect(),
    )
}

#[test]
fn keys_follow_the_specification() {
    assert_eq!(user_key(UserId(7)), "user:7:topics");
    assert_eq!(user_of_key("user:7:topics"), Some(UserId(7)));
    assert_eq!(user_of_key(ALL_USERS_KEY), None);
    assert_eq!(user_of_key(CATALOG_KEY), None);
}

#[test]
fn fill_then_hit_then_invalidate() {
    let cache = TopicCache::default();
    assert!(cache.user_topics(UserId(1)).is_none());
    let ticket = cache.ticket(UserId(1));
    assert!(cache.fill_user_topics(&ticket, Arc::new(BTreeSet::from([TopicId(3)]))));
    assert_eq!(
        cache.user_topics(UserId(1)).as_deref(),
        Some(&BTreeSet::from([TopicId(3)]))
    );
    assert!(
        cache.user_topics(UserId(2)).is_none(),
        "entries are per user"
    );

    cache.invalidate_users(&[UserId(1)], &crate::testing::token());
    assert!(cache.user_topics(UserId(1)).is_none());
    assert_eq!(cache.stats().hits.load(Ordering::Relaxed), 1);
    assert_eq!(cache.stats().invalidations.load(Ordering::Relaxed), 1);
}

#[test]
fn a_fill_read_before_an_invalidation_is_refused() {
    let cache = TopicCache::default();
    let token = crate::testing::token();
    let before = cache.ticket(UserId(1));
    // ... the reader reads the database here; a writer commits and invalidates ...
    cache.invalidate_users(&[UserId(1)], &token);
    cache.invalidate_catalog(&token);
    assert!(!cache.fill_user_topics(&before, Arc::new(BTreeSet::new())));
    assert!(!cache.fill_catalog(&before, catalog(&["Old"])));
    assert!(cache.user_topics(UserId(1)).is_none());
    assert!(cache.catalog().is_none());

    // A reader that started after the invalidation may fill.
    let after = cache.ticket(UserId(1));
    assert!(cache.fill_catalog(&after, catalog(&["New"])));
    assert_eq!(
        cache.catalog().map(|c| c[0].name.clone()),
        Some("New".into())
    );
}

#[test]
fn a_described_change_patches_the_entries_and_moves_their_versions() {
    let cache = TopicCache::default();
    let token = crate::testing::token();
    let ticket = cache.ticket(UserId(1));
    assert!(cache.fill_catalog(&ticket, catalog(&["A", "B", "C"])));
    assert!(cache.fill_user_topics(&ticket, Arc::new(BTreeSet::from([TopicId(1)]))));
    let other = cache.ticket(UserId(2));

    let bumps = cache.apply_subscriptions(
        &BTreeMap::from([(TopicId(2), count(5, 1)), (TopicId(1), count(0, 1))]),
        &BTreeMap::from([(
            UserId(1),
            BTreeMap::from([(TopicId(2), true), (TopicId(1), false)]),
        )]),
        &token,
    );

    let counts: Vec<i64> = cache
        .catalog()
        .map(|c| c.iter().map(|entry| entry.count.subscribers).collect())
        .unwrap_or_default();
    assert_eq!(counts, [0, 5, 0]);
    assert_eq!(
        cache.user_topics(UserId(1)).as_deref(),
        Some(&BTreeSet::from([TopicId(2)]))
    );
    assert_eq!(
        bumps,
        [
            // The user's flags with the user's bump: in commit order here, its very step.
            LiveEvent::User {
                user_id: UserId(1),
                version: ticket.user + 1,
                flags: Some(vec![(TopicId(1), false), (TopicId(2), true)].into()),
            },
            // The counts go with the shared bump when it is told (`Described::tell`).
            LiveEvent::Shared {
                version: ticket.catalog + 1,
                counts: None,
            },
        ]
    );
    assert_eq!(
        cache.ticket(UserId(2)).user,
        other.user,
        "others keep theirs"
    );
    assert_eq!(cache.stats().patches.load(Ordering::Relaxed), 2);
    assert_eq!(cache.stats().invalidations.load(Ordering::Relaxed), 0);
    // A read that began before the change cannot replace what the patch made.
    assert!(!cache.fill_catalog(&ticket, catalog(&["A", "B", "C"])));
    assert!(!cache.fill_user_topics(&ticket, Arc::new(BTreeSet::new())));
}

#[test]
fn a_patch_that_names_a_topic_the_catalog_lacks_drops_the_catalog() {
    let cache = TopicCache::default();
    let token = crate::testing::token();
    let ticket = cache.ticket(UserId(1));
    assert!(cache.fill_catalog(&ticket, catalog(&["A"])));
    cache.apply_subscriptions(
        &BTreeMap::from([(TopicId(9), count(1, 1))]),
        &BTreeMap::from([(UserId(1), BTreeMap::from([(TopicId(9), true)]))]),
        &token,
    );
    assert!(cache.catalog().is_none());
    assert!(cache.user_topics(UserId(1)).is_none(), "nothing to patch");
    assert!(cache.ticket(UserId(1)).catalog > ticket.catalog);
}

#[test]
fn a_patched_entry_expires_with_the_read_it_came_from() {
    let cache = TopicCache::new(Duration::from_millis(200));
    let token = crate::testing::token();
    let ticket = cache.ticket(UserId(1));
    assert!(cache.fill_catalog(&ticket, catalog(&["A"])));
    std::thread::sleep(Duration::from_millis(120));
    cache.apply_subscriptions(
        &BTreeMap::from([(TopicId(1), count(1, 1))]),
        &BTreeMap::new(),
        &token,
    );
    assert!(cache.catalog().is_some(), "patched, not dropped");
    std::thread::sleep(Duration::from_millis(120));
    assert!(
        cache.catalog().is_none(),
        "gone 200 ms after the read, not after the patch"
    );
}

#[test]
fn versions_of_own_commits_on_their_way_are_left_to_them() {
    let cache = TopicCache::following_database_versions(TTL);
    let token = crate::testing::token();
    let mine = shared::Moved {
        catalog: vec![(0, 5)],
        all_users: None,
        users: vec![(UserId(1), 3)],
    };
    let own = cache.expect_own(&mine);
    // Heard through the database before the commit's own post-commit work ran: nothing
    // is told and nothing moves; another instance's change in the same notification is.
    let heard = shared::Moved {
        users: vec![(UserId(1), 3), (UserId(2), 4)],
        ..mine.clone()
    };
    assert_eq!(
        cache.advance_heard(&heard, &token),
        [LiveEvent::User {
            user_id: UserId(2),
            version: 4,
            flags: None,
        }]
    );
    assert_eq!(cache.ticket(UserId(1)).catalog, 0);
    assert_eq!(cache.ticket(UserId(1)).user, 0);
    // The commit's own work moves and tells them.
    assert_eq!(cache.advance(&mine, &token).len(), 2);
    assert_eq!(cache.ticket(UserId(1)).catalog, 5);
    drop(own);
    // Once it is done, a repeat is told (pages ignore a version they have).
    assert_eq!(cache.advance_heard(&mine, &token).len(), 2);
    // A failed transaction's guard goes the same way: nothing stays held back.
    let failed = shared::Moved {
        catalog: vec![(0, 6)],
        ..Default::default()
    };
    drop(cache.expect_own(&failed));
    assert_eq!(cache.advance_heard(&failed, &token).len(), 1);
    assert_eq!(cache.ticket(UserId(1)).catalog, 6);
}

#[test]
fn another_users_invalidation_does_not_refuse_a_fill() {
    let cache = TopicCache::default();
    let ticket = cache.ticket(UserId(1));
    cache.invalidate_users(&[UserId(2)], &crate::testing::token());
    assert!(cache.fill_user_topics(&ticket, Arc::new(BTreeSet::new())));
}

#[test]
fn every_bump_is_reported_in_order() {
    let cache = TopicCache::default();
    let token = crate::testing::token();
    let start = cache.ticket(UserId(5));
    let mut reported = cache.invalidate_users(&[UserId(5)], &token);
    reported.push(cache.invalidate_catalog(&token));
    reported.push(cache.invalidate_catalog(&token));
    let mut events = reported.into_iter();
    assert_eq!(
        events.next(),
        Some(LiveEvent::User {
            user_id: UserId(5),
            version: start.user + 1,
            flags: None,
        })
    );
    assert_eq!(
        events.next(),
        Some(LiveEvent::Shared {
            version: start.catalog + 1,
            counts: None,
        })
    );
    assert_eq!(
        events.next(),
        Some(LiveEvent::Shared {
            version: start.catalog + 2,
            counts: None,
        })
    );
    assert!(events.next().is_none());
}

#[test]
fn versions_start_above_those_of_an_earlier_process() {
    let earlier = TopicCache::default();
    let token = crate::testing::token();
    for _ in 0..1000 {
        earlier.invalidate_catalog(&token);
    }
    let seen = earlier.ticket(UserId(1));
    std::thread::sleep(Duration::from_millis(5));
    let restarted = TopicCache::default();
    assert!(restarted.ticket(UserId(1)).catalog > seen.catalog);
    assert!(restarted.ticket(UserId(1)).user > seen.user);
}

#[test]
fn many_users_are_invalidated_by_one_epoch_bump() {
    let cache = TopicCache::default();
    let token = crate::testing::token();
    let before: Vec<Ticket> = (1..=3).map(|id| cache.ticket(UserId(id))).collect();
    for ticket in &before {
        assert!(cache.fill_user_topics(ticket, Arc::new(BTreeSet::new())));
    }
    let stale = cache.ticket(UserId(3));
    let everyone: Vec<UserId> = (1..=(MANY_USERS as i64 + 1)).map(UserId).collect();
    let reported = cache.invalidate_users(&everyone, &token);

    assert_eq!(
        cache.stats().invalidations.load(Ordering::Relaxed),
        1,
        "one operation"
    );
    assert!(matches!(reported.as_slice(), [LiveEvent::AllUsers(_)]));
    for (id, ticket) in (1..=3).map(UserId).zip(&before) {
        assert!(cache.user_topics(id).is_none(), "user {id} was dropped");
        assert!(
            cache.ticket(id).user > ticket.user,
            "user {id}'s version moved"
        );
    }
    assert!(!cache.fill_user_topics(&stale, Arc::new(BTreeSet::new())));
    // Per-user bumps after the epoch still move versions forward.
    let after_epoch = cache.ticket(UserId(1));
    cache.invalidate_users(&[UserId(1)], &token);
    assert!(cache.ticket(UserId(1)).user > after_epoch.user);
}

#[test]
fn a_zero_time_to_live_turns_the_cache_off() {
    let cache = TopicCache::new(Duration::ZERO);
    let ticket = cache.ticket(UserId(1));
    assert!(!cache.fill_catalog(&ticket, catalog(&["A"])));
    assert!(!cache.fill_user_topics(&ticket, Arc::new(BTreeSet::new())));
    assert!(cache.catalog().is_none());
    assert!(cache.user_topics(UserId(1)).is_none());
}

#[test]
fn entries_expire_after_their_time_to_live() {
    let cache = TopicCache::new(Duration::from_millis(50));
    let ticket = cache.ticket(UserId(1));
    assert!(cache.fill_catalog(&ticket, catalog(&["A"])));
    assert!(cache.catalog().is_some());
    std::thread::sleep(Duration::from_millis(120));
    assert!(cache.catalog().is_none());
}

/// An own commit's bump, told after its commit, is no news when the instance hears the commit
/// back through the database (PostgreSQL), even once other commits moved the catalog's version
/// past it: else a bump that says nothing would reach every open page twice.
#[test]
fn an_own_commit_told_is_no_news_when_heard_back() {
    let cache = TopicCache::following_database_versions(Duration::from_secs(60));
    let token = crate::testing::token();
    let renamed = shared::Moved {
        catalog: vec![(3, 1)],
        ..Default::default()
    };
    let own = cache.expect_own(&renamed);
    assert!(matches!(
        cache.advance(&renamed, &token)[..],
        [LiveEvent::Shared { counts: None, .. }]
    ));
    cache.told_own(&renamed);
    drop(own);
    let elsewhere = shared::Moved {
        catalog: vec![(4, 1)],
        ..Default::default()
    };
    assert_eq!(cache.advance_heard(&elsewhere, &token).len(), 1);
    assert!(
        cache.advance_heard(&renamed, &token).is_empty(),
        "heard back: told already"
    );
    assert_eq!(
        cache.advance_heard(&elsewhere, &token).len(),
        1,
        "another instance's commit is always told (pages ignore a version they have)"
    );
}

/// Another instance's change of a user's subscriptions tells the user's new flags with the
/// user's bump, so the user's pages here patch instead of refetching; but only when that bump
/// is the change's own step: with a later change of the user heard here first, the earlier
/// one's flags would undo it on a page.
#[test]
fn a_heard_change_s_flags_go_with_the_user_s_bump_only_as_its_own_step() {
    let cache = TopicCache::following_database_versions(Duration::from_secs(60));
    let token = crate::testing::token();
    let alice = UserId(7);
    let flags = UserFlags::from([(alice, BTreeMap::from([(TopicId(1), true)]))]);
    let heard = |version| shared::Moved {
        users: vec![(alice, version)],
        ..Default::default()
    };
    let (bumps, _) = cache.advance_heard_told(&heard(1), &[], &[], &flags, &token);
    assert_eq!(
        bumps,
        vec![LiveEvent::User {
            user_id: alice,
            version: cache.ticket(alice).user,
            flags: Some(vec![(TopicId(1), true)].into()),
        }]
    );
    cache.advance_heard(&heard(3), &token);
    let (bumps, _) = cache.advance_heard_told(&heard(2), &[], &[], &flags, &token);
    assert!(
        matches!(bumps[..], [LiveEvent::User { flags: None, .. }]),
        "{bumps:?}"
    );
}
