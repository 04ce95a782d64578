//! An in-memory table of one entity type, kept in creation order for lists
//! with stable pagination tokens.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

use crate::error::{Error, ValidationError};

#[cfg(test)]
mod order_tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Item {
        id: String,
    }

    impl Keyed for Item {
        fn key(&self) -> &str {
            &self.id
        }
    }

    fn ids(store: &Store<Item>, token: Option<String>, limit: usize) -> (Vec<String>, Option<String>) {
        let request = PageRequest { limit: Some(limit), pagination_token: token };
        let page = store.page(&request, "items", |_| true, |item| Ok(item.id)).unwrap();
        (page.items, page.next_page_token)
    }

    #[test]
    fn pages_follow_creation_order_across_removals_and_replacements() {
        let store = Store::default();
        for i in 0..10 {
            store.put_new(Item { id: format!("it-{i}") });
        }
        store.remove("it-0");
        store.remove("it-4");
        store.remove("it-9");
        store.put(Item { id: "it-5".into() }); // replaced: keeps its place
        store.put(Item { id: "it-10".into() });
        let (first, token) = ids(&store, None, 3);
        assert_eq!(first, ["it-1", "it-2", "it-3"]);
        let (second, token) = ids(&store, token, 3);
        assert_eq!(second, ["it-5", "it-6", "it-7"]);
        let (last, token) = ids(&store, token, 3);
        assert_eq!(last, ["it-8", "it-10"]);
        assert_eq!(token, None);
        assert_eq!(store.len(), 8);
    }
    #[test]
    fn the_order_lists_after_any_ordinal_and_skips_removed_places() {
        let mut order = Order::default();
        let ids: Vec<u64> = ["a", "b", "c"].into_iter().map(|id| order.push(Arc::from(id))).collect();
        assert_eq!(ids, [1, 2, 3]);
        order.remove(2);
        order.remove(0); // no such ordinal
        order.remove(u64::MAX);
        let after = |o: u64| order.after(o).map(|(ordinal, id)| (ordinal, id.to_string())).collect::<Vec<_>>();
        assert_eq!(after(0), [(1, "a".to_string()), (3, "c".to_string())]);
        assert_eq!(after(1), [(3, "c".to_string())]);
        assert_eq!(after(3), []);
        assert_eq!(after(u64::MAX - 1), []);
    }
}

#[cfg(test)]
mod token_tests {
    #[test]
    fn a_token_works_only_in_the_scope_that_issued_it() {
        let token = super::token(41, "activities|wa-1|");
        assert_eq!(super::read_token(&token, "activities|wa-1|"), Some(41));
        assert_eq!(super::read_token(&token, "activities|wa-2|"), None);
        assert_eq!(super::read_token(&token, "approvals|||"), None);
        assert_eq!(super::read_token("41", "activities|wa-1|"), None, "a bare offset is not a token");
        assert_eq!(super::read_token("zz.zz", "activities|wa-1|"), None);
    }
}

/// Default page size of list calls.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Largest page a list call may ask for.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// What a list call asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size, default 100, at most 1000.
    pub limit: Option<usize>,
    /// The `nextPageToken` of the previous page.
    pub pagination_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// An entity with an id.
pub trait Keyed {
    /// The id.
    fn key(&self) -> &str;

    /// The id, shared: the table keeps it as its key. An entity that holds
    /// its id shared already hands out its own, so the id is kept once.
    fn shared_key(&self) -> Arc<str> {
        Arc::from(self.key())
    }
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn key(&self) -> &str {
                &self.id
            }
        }
    )*};
}

keyed!(
    crate::model::policy::Policy,
    crate::model::activity::Activity,
    crate::model::change_request::ChangeRequest,
    crate::model::webhook::Webhook,
    crate::model::webhook::WebhookEvent
);

/// A table of entities by id, remembering creation order.
#[derive(Debug)]
pub struct Store<T> {
    // Keys are ids the engine made (random, not chosen by callers), so a
    // fast non-keyed hash is safe here. The map and the order share each id.
    items: DashMap<Arc<str>, (u64, T), FxBuildHasher>,
    order: RwLock<Order>,
}

/// The ids in creation order: the id of ordinal `n` at index `n - 1`.
///
/// Ordinals are drawn one after the other under the order's lock, so a new
/// id always goes at the end: a push, where a `BTreeMap` walked its depth on
/// every insert (about 490 instructions per activity, a twentieth of an
/// evaluation). A removed id leaves its place empty: only webhooks are
/// removed, and a place is 16 bytes.
#[derive(Debug, Default)]
struct Order(Vec<Option<Arc<str>>>);

impl Order {
    /// Lists `id` at the end; its ordinal.
    fn push(&mut self, id: Arc<str>) -> u64 {
        self.0.push(Some(id));
        self.0.len() as u64
    }

    fn remove(&mut self, ordinal: u64) {
        let index = ordinal.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        if let Some(place) = index.and_then(|i| self.0.get_mut(i)) {
            *place = None;
        }
    }

    /// The ids listed after `ordinal`, with their ordinals, oldest first.
    fn after(&self, ordinal: u64) -> impl Iterator<Item = (u64, &Arc<str>)> {
        // Ordinal `n` sits at index `n - 1`: the next one at index `ordinal`.
        let start = usize::try_from(ordinal).unwrap_or(usize::MAX).min(self.0.len());
        (start as u64 + 1..).zip(&self.0[start..]).filter_map(|(ordinal, id)| Some((ordinal, id.as_ref()?)))
    }
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store { items: DashMap::with_hasher(FxBuildHasher), order: RwLock::new(Order::default()) }
    }
}

impl<T: Clone + Keyed> Store<T> {
    /// Inserts or replaces the item with its id; a new id goes to the end of the order.
    pub fn put(&self, item: T) {
        // A known id is replaced without the order lock (decisions update
        // approvals while lists may hold it).
        let item = match self.items.get_mut(item.key()) {
            Some(mut entry) => {
                entry.1 = item;
                return;
            }
            None => item,
        };
        self.put_new(item);
    }

    /// [`Store::put`] for an item whose id is most likely new (an id the
    /// engine just drew): one lookup instead of two, under the order lock
    /// (an item already there is still replaced).
    pub fn put_new(&self, item: T) {
        // A new id's ordinal is drawn and listed under the order lock, so a
        // page never hands out a token past an item it has not seen. (Locks
        // are taken order first, then map, as `page` does.)
        let mut order = self.order.write().unwrap_or_else(|p| p.into_inner());
        match self.items.entry(item.shared_key()) {
            dashmap::Entry::Occupied(mut entry) => entry.get_mut().1 = item,
            dashmap::Entry::Vacant(entry) => {
                let ordinal = order.push(entry.key().clone());
                entry.insert((ordinal, item));
            }
        }
    }

    /// The item, cloned.
    pub fn get(&self, id: &str) -> Option<T> {
        self.items.get(id).map(|e| e.1.clone())
    }

    /// What `read` makes of the item, without cloning it.
    pub fn read<R>(&self, id: &str, read: impl FnOnce(&T) -> R) -> Option<R> {
        self.items.get(id).map(|e| read(&e.1))
    }

    /// The creation ordinal of `id`.
    pub fn ordinal(&self, id: &str) -> Option<u64> {
        self.items.get(id).map(|e| e.0)
    }

    /// Changes the item in place; `None` when absent.
    pub fn update<R>(&self, id: &str, change: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.items.get_mut(id).map(|mut e| change(&mut e.1))
    }

    /// Removes the item.
    pub fn remove(&self, id: &str) -> Option<T> {
        let (_, (ordinal, item)) = self.items.remove(id)?;
        self.order.write().unwrap_or_else(|p| p.into_inner()).remove(ordinal);
        Some(item)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// What `pick` makes of each item it keeps, in no order; the items it
    /// skips are not cloned (the dispatcher's scan of the delivery log).
    pub(crate) fn pick<V>(&self, mut pick: impl FnMut(&T) -> Option<V>) -> Vec<V> {
        self.items.iter().filter_map(|entry| pick(&entry.value().1)).collect()
    }

    /// One page of the items that `keep`, in creation order. `scope` names
    /// the list and its filters: a page token is valid only in the scope that
    /// issued it.
    pub fn page<V>(
        &self,
        request: &PageRequest,
        scope: &str,
        keep: impl Fn(&T) -> bool,
        view: impl Fn(T) -> Result<V, Error>,
    ) -> Result<Page<V>, Error> {
        let limit = checked_limit(request.limit)?;
        let after = match &request.pagination_token {
            None => 0,
            Some(token) => read_token(token, scope).ok_or_else(|| {
                ValidationError::new(
                    "paginationToken",
                    "is not a token this list issued (tokens are valid only for the list and filters that made them)",
                )
            })?,
        };
        // The page is picked under the order lock, which new items wait for;
        // `view` (which may read the journal) runs after it is released.
        let (picked, more) = {
            let order = self.order.read().unwrap_or_else(|p| p.into_inner());
            let mut picked = Vec::with_capacity(limit.min(64));
            let mut more = false;
            for (ordinal, id) in order.after(after) {
                // Filtered in place: only the items of the page are cloned.
                let Some(entry) = self.items.get(id) else { continue };
                if !keep(&entry.1) {
                    continue;
                }
                if picked.len() == limit {
                    more = true;
                    break;
                }
                picked.push((ordinal, entry.1.clone()));
            }
            (picked, more)
        };
        let last = picked.last().map(|(ordinal, _)| *ordinal);
        let items = picked.into_iter().map(|(_, item)| view(item)).collect::<Result<Vec<V>, Error>>()?;
        Ok(Page { items, next_page_token: if more { last.map(|o| token(o, scope)) } else { None } })
    }
}

/// A page token: the position after which the next page starts, with a check
/// tying it to its list and filters. Opaque to callers; not a secret (a forged
/// one can only name another position of the same list).
fn token(ordinal: u64, scope: &str) -> String {
    format!("{ordinal:x}.{:08x}", check(ordinal, scope))
}

fn read_token(token: &str, scope: &str) -> Option<u64> {
    let (ordinal, checked) = token.split_once('.')?;
    let ordinal = u64::from_str_radix(ordinal, 16).ok().filter(|o| *o < u64::MAX)?;
    (u32::from_str_radix(checked, 16).ok()? == check(ordinal, scope)).then_some(ordinal)
}

fn check(ordinal: u64, scope: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same token on every node and every restart.
    let mut hasher = std::hash::DefaultHasher::new();
    (scope, ordinal).hash(&mut hasher);
    hasher.finish() as u32
}

/// Validates a page size.
pub fn checked_limit(limit: Option<usize>) -> Result<usize, Error> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ValidationError::new("limit", format!("`{n}` must be between 1 and {MAX_PAGE_LIMIT}")).into()),
    }
}
