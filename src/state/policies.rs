//! The policies: every stored version's latest, and the compiled, indexed
//! snapshot that evaluation reads. The fold updates both; the snapshot is
//! swapped once per applied batch (once at the end of recovery), so readers
//! never lock and never see half a batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::model::policy::Policy;
use crate::policy::compile::{CompiledPolicy, CompiledRule};
use crate::policy::{compile, PolicySet};

use super::store::{Page, PageRequest, Store};
use crate::error::Error;

/// Policies and their snapshot.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    stored: Store<Policy>,
    compiled: DashMap<String, Arc<CompiledPolicy>>,
    snapshot: ArcSwap<PolicySet>,
    /// A policy changed since the snapshot was built.
    stale: AtomicBool,
}

impl Policies {
    /// Fold: `policy` now reads so. Answers whether its velocity rule changed
    /// (its windows must then be rebuilt from the journal: a wider window sees
    /// counts a narrower one had forgotten).
    pub(crate) fn put(&self, policy: Policy) -> bool {
        let id = policy.id.clone();
        let before = self.compiled.get(&id).map(|c| c.rule.clone());
        self.stored.put(policy.clone());
        let ordinal = self.stored.ordinal(&id).unwrap_or(u64::MAX);
        match compile(Arc::new(policy), ordinal) {
            Ok(compiled) => {
                self.compiled.insert(id.clone(), Arc::new(compiled));
            }
            Err(error) => {
                // Only validated policies are journaled; one that no longer
                // compiles (rules of another build) is left out, loudly.
                tracing::error!(policy = %id, %error, "stored policy does not compile; it is not evaluated");
                self.compiled.remove(&id);
            }
        }
        self.stale.store(true, Ordering::Release);
        let after = self.compiled.get(&id).map(|c| c.rule.clone());
        matches!((before, after), (Some(b), Some(a @ CompiledRule::Velocity(_))) if b != a)
    }

    /// Swaps in a snapshot of the compiled policies if any changed.
    pub(crate) fn publish(&self) {
        if self.stale.swap(false, Ordering::AcqRel) {
            let set = PolicySet::new(self.compiled.iter().map(|e| e.value().clone()));
            self.snapshot.store(Arc::new(set));
        }
    }

    /// The snapshot evaluation reads.
    pub(crate) fn snapshot(&self) -> Arc<PolicySet> {
        self.snapshot.load_full()
    }

    /// A policy as compiled now.
    pub(crate) fn compiled(&self, id: &str) -> Option<Arc<CompiledPolicy>> {
        self.compiled.get(id).map(|c| c.clone())
    }

    /// A stored policy.
    pub(crate) fn get(&self, id: &str) -> Option<Policy> {
        self.stored.get(id)
    }

    /// How many are stored.
    pub(crate) fn len(&self) -> usize {
        self.stored.len()
    }

    /// A page of policies in creation order.
    pub(crate) fn page<V>(
        &self,
        request: &PageRequest,
        scope: &str,
        keep: impl Fn(&Policy) -> bool,
        view: impl Fn(Policy) -> Result<V, Error>,
    ) -> Result<Page<V>, Error> {
        self.stored.page(request, scope, keep, view)
    }
}
