//! Query strings of the list routes: `limit`, `paginationToken` and the
//! route's filters, each refused with a 400 that names the parameter.

use std::collections::HashMap;
use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::problem::Problem;
use crate::engine::{PageRequest, MAX_PAGE_LIMIT};

/// The parameters of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    params: HashMap<String, String>,
}

impl FromRequest for ListQuery {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = web::Query::<Vec<(String, String)>>::from_query(request.query_string())
            .map_err(|e| Problem::bad_request(format!("query: {e}")))
            .and_then(|pairs| ListQuery::from_pairs(pairs.into_inner()));
        ready(parsed)
    }
}

impl ListQuery {
    /// The parameters; one given twice is refused, as a JSON body's key
    /// given twice is (`limit=2000&limit=1` is no choice to make).
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, Problem> {
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.contains_key(&name) {
                let shown: String = name.chars().take(64).collect();
                return Err(Problem::bad_request(format!("{shown}: given more than once")));
            }
            params.insert(name, value);
        }
        Ok(ListQuery { params })
    }

    /// `limit` and `paginationToken`; the engine checks the range and the token.
    pub fn page(&self) -> Result<PageRequest, Problem> {
        // Empty, as every other parameter, it is absent (the default page).
        let limit = match self.params.get("limit").filter(|text| !text.trim().is_empty()) {
            None => None,
            Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
                Problem::bad_request(format!("limit: `{text}` must be an integer between 1 and {MAX_PAGE_LIMIT}"))
            })?),
        };
        let pagination_token = self.params.get("paginationToken").filter(|t| !t.is_empty()).cloned();
        Ok(PageRequest { limit, pagination_token })
    }

    /// A free-text filter; an empty value means no filter.
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.get(name).filter(|value| !value.is_empty()).cloned()
    }

    /// A filter naming one of the contract's values (`status=Active`).
    pub fn named<T: DeserializeOwned>(&self, name: &str, allowed: &[&str]) -> Result<Option<T>, Problem> {
        let Some(value) = self.text(name) else { return Ok(None) };
        serde_json::from_value(serde_json::Value::String(value.clone()))
            .map(Some)
            .map_err(|_| Problem::bad_request(format!("{name}: `{value}` is not one of {}", allowed.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::PolicyStatus;

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery { params: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        let pairs = |list: &[(&str, &str)]| list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let problem = ListQuery::from_pairs(pairs(&[("limit", "2000"), ("limit", "1")])).unwrap_err();
        assert_eq!(problem.detail, "limit: given more than once");
        let once = ListQuery::from_pairs(pairs(&[("limit", "2"), ("status", "Active")])).unwrap();
        assert_eq!(once.page().unwrap().limit, Some(2));
    }

    #[test]
    fn limit_must_be_an_integer() {
        assert_eq!(query(&[("limit", "5")]).page().unwrap().limit, Some(5));
        assert!(query(&[("limit", "x")]).page().unwrap_err().detail.starts_with("limit:"));
        assert!(query(&[("limit", "-1")]).page().unwrap_err().detail.starts_with("limit:"));
        assert!(query(&[("limit", "1.5")]).page().unwrap_err().detail.starts_with("limit:"));
        assert_eq!(query(&[("limit", "")]).page().unwrap().limit, None, "empty is absent");
        assert_eq!(query(&[("limit", " ")]).page().unwrap().limit, None);
    }

    #[test]
    fn named_values_list_the_choices() {
        let q = query(&[("status", "Archived")]);
        assert_eq!(q.named::<PolicyStatus>("status", &["Active", "Archived"]).unwrap(), Some(PolicyStatus::Archived));
        let q = query(&[("status", "Gone")]);
        let problem = q.named::<PolicyStatus>("status", &["Active", "Archived"]).unwrap_err();
        assert_eq!(problem.detail, "status: `Gone` is not one of Active, Archived");
    }
}
