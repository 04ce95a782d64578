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
    kinds: HashMap<ActivityKind, KindIndex>,
}

impl PolicySet {
    /// Builds the set from every known policy; archived ones are left out.
    pub fn new(all: impl IntoIterator<Item = Arc<CompiledPolicy>>) -> Self {
        let mut policies: Vec<_> = all.into_iter().filter(|p| p.policy.spec.status == PolicyStatus::Active).collect();
        policies.sort_by_key(|p| (p.policy.spec.priority.is_none(), p.policy.spec.priority, p.ordinal));
        let mut kinds: HashMap<ActivityKind, KindIndex> = HashMap::default();
        for (position, compiled) in policies.iter().enumerate() {
            let index = kinds.entry(compiled.policy.spec.activity_kind).or_default();
            let filters = &compiled.filters;
            // One bucket per policy: the narrowest filter that must hold.
            if let Some(ids) = &filters.wallet_id {
                for id in ids {
                    index.by_wallet.entry(id.clone()).or_default().push(position);
                }
            } else if let Some(ids) = &filters.policy_id {
                for id in ids {
                    index.by_policy.entry(id.clone()).or_default().push(position);
                }
            } else if let Some(ids) = &filters.initiator_id {
                for id in ids {
                    index.by_initiator.entry(id.clone()).or_default().push(position);
                }
            } else if let Some(tags) = filters.tags_any.as_ref() {
                for tag in tags {
                    index.by_tag.entry(tag.clone()).or_default().push(position);
                }
            } else if let Some(tag) = filters.tags_all.as_ref().and_then(|t| t.first()) {
                index.by_tag.entry(tag.clone()).or_default().push(position);
            } else {
                index.unindexed.push(position);
            }
        }
        PolicySet { policies, kinds }
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
        let Some(index) = self.kinds.get(&subject.kind) else { return };
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
            let tags = subject.wallet_tags;
            let mut seen: HashSet<&String> = HashSet::default();
            for (i, tag) in tags.iter().enumerate() {
                let repeated = if tags.len() <= TAGS_SCANNED { tags[..i].contains(tag) } else { !seen.insert(tag) };
                if !repeated {
                    add(index.by_tag.get(tag));
                }
            }
        }
        let mut visit_position = |position: usize| {
            let policy = &self.policies[position];
            if applies_to(policy, subject) {
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
pub fn applies_to(policy: &CompiledPolicy, subject: &Subject<'_>) -> bool {
    let f = &policy.filters;
    let within = |set: &Option<HashSet<String>>, value: Option<&str>| match set {
        None => true,
        Some(set) => value.is_some_and(|v| set.contains(v)),
    };
    if !within(&f.wallet_id, subject.wallet_id)
        || !within(&f.initiator_id, Some(subject.initiator_id))
        || !within(&f.policy_id, subject.policy_id)
    {
        return false;
    }
    // The recipient is normalized only when a filter compares it.
    if f.recipient.is_some() && !within(&f.recipient, subject.recipient()) {
        return false;
    }
    if let Some(any) = &f.tags_any {
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
