//! The compiled, indexed set of active policies: an immutable snapshot that
//! the registry swaps atomically when policies change, so readers never lock.

use std::sync::Arc;

// Seeded fast hashing: the index is probed with caller-chosen wallet ids,
// initiators and tags on every evaluation.
use foldhash::{HashMap, HashSet};
use smallvec::SmallVec;

use crate::model::policy::{ActivityKind, PolicyStatus};

use super::compile::{CompiledPolicy, CompiledRule, Measure};
use super::subject::Subject;

/// Most wallet tags deduplicated by a scan rather than a set (quadratic, so
/// only for a few).
const TAGS_SCANNED: usize = 8;

/// The policies matching one activity, borrowed from the set, in evaluation
/// order: a few, kept inline.
pub type Matching<'s> = SmallVec<[&'s Arc<CompiledPolicy>; 4]>;

/// Positions (into [`PolicySet::policies`]) of one activity kind's policies,
/// bucketed by the most selective filter each has, so that evaluation only
/// looks at policies that can match.
#[derive(Debug, Default)]
struct KindIndex {
    by_wallet: HashMap<String, Vec<usize>>,
    by_tag: HashMap<String, Vec<usize>>,
    by_initiator: HashMap<String, Vec<usize>>,
    by_policy: HashMap<String, Vec<usize>>,
    unindexed: Vec<usize>,
}

/// The active policies, compiled and indexed.
#[derive(Debug, Default)]
pub struct PolicySet {
    /// Active policies in evaluation order: `priority` ascending (absent
    /// last), ties by creation.
    policies: Vec<Arc<CompiledPolicy>>,
    /// By position: the filter whose bucket holds the policy, if one proves
    /// what it checks.
    indexed_by: Vec<Option<IndexedBy>>,
    /// `Wallets:Sign` policies (a field per kind, not a map: no hashing).
    signatures: KindIndex,
    /// `Policies:Modify` policies.
    policy_changes: KindIndex,
}

/// The filter that put a policy in its bucket of the index. A policy found
/// through that bucket passes that filter: the lookup was its check (the
/// bucket's key is the subject's own wallet, policy, initiator or tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexedBy {
    WalletId,
    PolicyId,
    InitiatorId,
    AnyTag,
}

impl PolicySet {
    /// Builds the set from every known policy; archived ones are left out.
    pub fn new(all: impl IntoIterator<Item = Arc<CompiledPolicy>>) -> Self {
        let mut policies: Vec<_> = all.into_iter().filter(|p| p.policy.spec.status == PolicyStatus::Active).collect();
        policies.sort_by_key(|p| (p.policy.spec.priority.is_none(), p.policy.spec.priority, p.ordinal));
        let (mut signatures, mut policy_changes) = (KindIndex::default(), KindIndex::default());
        let mut indexed_by = Vec::with_capacity(policies.len());
        for (position, compiled) in policies.iter().enumerate() {
            let index = match compiled.policy.spec.activity_kind {
                ActivityKind::WalletsSign => &mut signatures,
                ActivityKind::PoliciesModify => &mut policy_changes,
            };
            let filters = &compiled.filters;
            // One bucket per policy: the narrowest filter that must hold.
            let by = if let Some(ids) = &filters.wallet_id {
                for id in ids {
                    index.by_wallet.entry(id.clone()).or_default().push(position);
                }
                Some(IndexedBy::WalletId)
            } else if let Some(ids) = &filters.policy_id {
                for id in ids {
                    index.by_policy.entry(id.clone()).or_default().push(position);
                }
                Some(IndexedBy::PolicyId)
            } else if let Some(ids) = &filters.initiator_id {
                for id in ids {
                    index.by_initiator.entry(id.clone()).or_default().push(position);
                }
                Some(IndexedBy::InitiatorId)
            } else if let Some(tags) = filters.tags_any.as_ref() {
                for tag in tags {
                    index.by_tag.entry(tag.clone()).or_default().push(position);
                }
                Some(IndexedBy::AnyTag)
            } else if let Some(tag) = filters.tags_all.as_ref().and_then(|t| t.first()) {
                // Its first `hasAll` tag proves nothing of the others.
                index.by_tag.entry(tag.clone()).or_default().push(position);
                None
            } else {
                index.unindexed.push(position);
                None
            };
            indexed_by.push(by);
        }
        PolicySet { policies, indexed_by, signatures, policy_changes }
    }

    /// The active policies whose activity kind and filters match `subject`,
    /// in evaluation order.
    pub fn matching<'s>(&'s self, subject: &Subject<'_>) -> Matching<'s> {
        let mut found = Matching::new();
        self.visit_matching(subject, |policy| found.push(policy));
        found
    }

    /// Calls `visit` with each active policy whose activity kind and filters
    /// match `subject`, in evaluation order: [`PolicySet::matching`] without
    /// collecting them.
    pub fn visit_matching<'s>(&'s self, subject: &Subject<'_>, mut visit: impl FnMut(&'s Arc<CompiledPolicy>)) {
        let index = match subject.kind {
            ActivityKind::WalletsSign => &self.signatures,
            ActivityKind::PoliciesModify => &self.policy_changes,
        };
        // The buckets that can hold a matching policy. Each is in evaluation
        // order (positions ascending): one bucket alone is visited as it is.
        let mut buckets: SmallVec<[&[usize]; 4]> = SmallVec::new();
        let mut add = |bucket: Option<&'s Vec<usize>>| {
            if let Some(bucket) = bucket.filter(|b| !b.is_empty()) {
                buckets.push(bucket);
            }
        };
        add(Some(&index.unindexed));
        // An empty map is not probed: most sets index by one filter only.
        let probe = |map: &'s HashMap<String, Vec<usize>>, key: &str| {
            if map.is_empty() {
                None
            } else {
                map.get(key)
            }
        };
        if let Some(wallet) = subject.wallet_id {
            add(probe(&index.by_wallet, wallet));
        }
        if let Some(policy) = subject.policy_id {
            add(probe(&index.by_policy, policy));
        }
        add(probe(&index.by_initiator, subject.initiator_id));
        if !index.by_tag.is_empty() {
            // A tag given twice is looked up once. A wallet has a few tags:
            // a scan of the ones before beats a set, which allocates; past
            // `TAGS_SCANNED` a set keeps the check linear.
            // (The set is made only when needed: seeding its hasher costs.)
            let tags = subject.wallet_tags;
            let mut seen: Option<HashSet<&String>> = None;
            for (i, tag) in tags.iter().enumerate() {
                let repeated = if tags.len() <= TAGS_SCANNED {
                    tags[..i].contains(tag)
                } else {
                    !seen.get_or_insert_with(HashSet::default).insert(tag)
                };
                if !repeated {
                    add(index.by_tag.get(tag));
                }
            }
        }
        let mut visit_position = |position: usize| {
            let policy = &self.policies[position];
            if applies_to(policy, subject, self.indexed_by[position]) {
                visit(policy);
            }
        };
        match buckets.as_slice() {
            [] => {}
            [only] => only.iter().for_each(|&p| visit_position(p)),
            several => {
                // A policy may sit in several buckets (a wallet's two tags):
                // merged in order, each once.
                let mut positions: SmallVec<[usize; 16]> = several.iter().flat_map(|b| b.iter().copied()).collect();
                positions.sort_unstable();
                positions.dedup();
                positions.into_iter().for_each(visit_position);
            }
        }
    }
}

/// Whether every filter of `policy` holds for `subject`, and, for a velocity
/// rule on one asset, whether the activity moves that asset.
/// The policy was found through the index under `known` (if any): that
/// filter holds already and is not checked again.
fn applies_to(policy: &CompiledPolicy, subject: &Subject<'_>, known: Option<IndexedBy>) -> bool {
    let f = &policy.filters;
    let proven = |filter: IndexedBy| known == Some(filter);
    let within = |set: &Option<HashSet<String>>, value: Option<&str>| match set {
        None => true,
        Some(set) => value.is_some_and(|v| set.contains(v)),
    };
    if !(proven(IndexedBy::WalletId) || within(&f.wallet_id, subject.wallet_id))
        || !(proven(IndexedBy::InitiatorId) || within(&f.initiator_id, Some(subject.initiator_id)))
        || !(proven(IndexedBy::PolicyId) || within(&f.policy_id, subject.policy_id))
    {
        return false;
    }
    // The recipient is normalized only when a filter compares it.
    if f.recipient.is_some() && !within(&f.recipient, subject.recipient()) {
        return false;
    }
    if let Some(any) = f.tags_any.as_ref().filter(|_| !proven(IndexedBy::AnyTag)) {
        if !subject.wallet_tags.iter().any(|t| any.contains(t)) {
            return false;
        }
    }
    if let Some(all) = &f.tags_all {
        if !all.iter().all(|t| subject.wallet_tags.contains(t)) {
            return false;
        }
    }
    if let Some(types) = &f.transaction_type {
        match subject.transaction_type {
            Some(t) if types.contains(t.as_str()) => {}
            _ => return false,
        }
    }
    if let Some(symbols) = &f.asset_symbol {
        if !subject.assets.iter().all(|a| symbols.contains(a.symbol)) {
            return false;
        }
    }
    if let CompiledRule::Velocity(v) = &policy.rule {
        if let Measure::Asset { symbol, .. } = &v.measure {
            return subject.moves(symbol);
        }
    }
    true
}
