//! A small router: method + path pattern → handler.
//!
//! The same table feeds the manifest (the routes the host mounts) and the
//! dispatch of [`crate::Plugin`]'s requests, so a plugin declares each route
//! exactly once. Patterns are `/`-separated segments: literals, `{name}`, and a
//! final `{*name}` that takes the rest of the path.
//!
//! The exports dispatch through [`table`]: the plugin's router built on first use and
//! kept for the life of the instance, so it is built at most once per instance
//! (the host runs each request on a fresh instance, so in practice once per request).

use crate::bindings::polypay::plugin::plugin_types::Route;
use crate::http::{IntoResponse, Request, Response};
use std::any::TypeId;
use std::cell::RefCell;

type Handler = Box<dyn Fn(&Request) -> Response>;

struct Entry {
    methods: Vec<String>,
    pattern: String,
    handler: Handler,
}

/// Routes of one plugin. Build it with [`Router::new`] and the method helpers.
#[derive(Default)]
pub struct Router {
    entries: Vec<Entry>,
    fallback: Option<Handler>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `methods` (upper-case, e.g. `["GET", "POST"]`) on `pattern` to `handler`.
    pub fn route<R, F>(mut self, methods: &[&str], pattern: &str, handler: F) -> Self
    where
        R: IntoResponse,
        F: Fn(&Request) -> R + 'static,
    {
        self.entries.push(Entry {
            methods: methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            pattern: pattern.to_owned(),
            handler: Box::new(move |req| handler(req).into_response()),
        });
        self
    }

    pub fn get<R: IntoResponse, F: Fn(&Request) -> R + 'static>(
        self,
        pattern: &str,
        handler: F,
    ) -> Self {
        self.route(&["GET"], pattern, handler)
    }

    pub fn post<R: IntoResponse, F: Fn(&Request) -> R + 'static>(
        self,
        pattern: &str,
        handler: F,
    ) -> Self {
        self.route(&["POST"], pattern, handler)
    }

    pub fn put<R: IntoResponse, F: Fn(&Request) -> R + 'static>(
        self,
        pattern: &str,
        handler: F,
    ) -> Self {
        self.route(&["PUT"], pattern, handler)
    }

    pub fn delete<R: IntoResponse, F: Fn(&Request) -> R + 'static>(
        self,
        pattern: &str,
        handler: F,
    ) -> Self {
        self.route(&["DELETE"], pattern, handler)
    }

    /// Answers requests that reach the plugin but match no route (the host
    /// normally answers those itself); the default is a plain 404.
    pub fn fallback<R: IntoResponse, F: Fn(&Request) -> R + 'static>(mut self, handler: F) -> Self {
        self.fallback = Some(Box::new(move |req| handler(req).into_response()));
        self
    }

    /// The routes for the manifest: one per pattern, methods merged.
    pub fn routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = Vec::new();
        for entry in &self.entries {
            match routes.iter_mut().find(|r| r.path == entry.pattern) {
                Some(route) => {
                    for m in &entry.methods {
                        if !route.methods.contains(m) {
                            route.methods.push(m.clone());
                        }
                    }
                }
                None => routes.push(Route {
                    methods: entry.methods.clone(),
                    path: entry.pattern.clone(),
                }),
            }
        }
        routes
    }

    /// Finds the route for `method` and a plugin-relative `path`: its pattern
    /// and parameters. Literal matches win over parameters, like the host's.
    pub fn resolve(&self, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        let method = method.to_ascii_uppercase();
        self.entries
            .iter()
            .filter(|e| e.accepts(&method))
            .filter_map(|e| match_pattern(&e.pattern, path).map(|params| (e, params)))
            .max_by_key(|(e, _)| specificity(&e.pattern))
            .map(|(e, params)| (e.pattern.clone(), params))
    }

    /// Serves `request`: by its `route` when the host set one, else by its path.
    pub fn dispatch(&self, request: &Request) -> Response {
        if request.route.is_empty()
            && let Some((route, params)) = self.resolve(&request.method, &request.path)
        {
            let routed = Request {
                route,
                params,
                ..request.clone()
            };
            return self.dispatch(&routed);
        }
        let entry = self
            .entries
            .iter()
            .find(|e| e.pattern == request.route && e.accepts(&request.method));
        match (entry, &self.fallback) {
            (Some(e), _) => (e.handler)(request),
            (None, Some(fallback)) => fallback(request),
            (None, None) => Response::text(404, "not found"),
        }
    }
}

impl Entry {
    fn accepts(&self, method: &str) -> bool {
        // The host serves HEAD through GET routes, as HTTP intends.
        self.methods.iter().any(|m| {
            m.eq_ignore_ascii_case(method) || (method.eq_ignore_ascii_case("HEAD") && m == "GET")
        })
    }
}

/// The router of plugin `P`, built by [`crate::Plugin::router`] on first use in this
/// instance (per thread, for native tests) and kept.
pub(crate) fn table<P: crate::Plugin + 'static>() -> &'static Router {
    thread_local! {
        static TABLES: RefCell<Vec<(TypeId, &'static Router)>> = const { RefCell::new(Vec::new()) };
    }
    let id = TypeId::of::<P>();
    if let Some(router) = TABLES.with_borrow(|t| t.iter().find(|(k, _)| *k == id).map(|(_, r)| *r))
    {
        return router;
    }
    // Leaked once per plugin type and thread: it lives as long as the instance.
    let router: &'static Router = Box::leak(Box::new(P::router()));
    TABLES.with_borrow_mut(|t| t.push((id, router)));
    router
}

/// Matches `path` against `pattern`, returning the parameters on success.
pub fn match_pattern(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, p) in pat.iter().enumerate() {
        if let Some(name) = p.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
            let rest = segs.get(i..).unwrap_or(&[]).join("/");
            params.push((name.to_owned(), crate::http::percent_decode(&rest, false)));
            return Some(params);
        }
        let seg = segs.get(i)?;
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !seg.is_empty() => {
                params.push((name.to_owned(), crate::http::percent_decode(seg, false)))
            }
            Some(_) => return None,
            None if p == seg => {}
            None => return None,
        }
    }
    (segs.len() == pat.len()).then_some(params)
}

/// Orders overlapping patterns: more literal segments first, wildcards last.
fn specificity(pattern: &str) -> (usize, bool) {
    let literal = pattern.split('/').filter(|s| !s.starts_with('{')).count();
    (literal, !pattern.contains("{*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn literal_route_wins_over_parameter_route() {
        let router = Router::new()
            .get("/invoices/{id}", |r: &Request| {
                Response::text(200, r.param("id").unwrap_or("-"))
            })
            .get("/invoices/stats", |_: &Request| {
                Response::text(200, "stats")
            });
        assert_eq!(
            router.dispatch(&req("GET", "/invoices/stats")).body_text(),
            "stats"
        );
        assert_eq!(
            router.dispatch(&req("GET", "/invoices/abc")).body_text(),
            "abc"
        );
    }

    #[test]
    fn params_are_percent_decoded_and_wildcard_takes_the_rest() {
        assert_eq!(
            match_pattern("/a/{id}/{*rest}", "/a/x%20y/b/c"),
            Some(vec![
                ("id".into(), "x y".into()),
                ("rest".into(), "b/c".into())
            ])
        );
        assert_eq!(match_pattern("/a/{id}", "/a/"), None);
        assert_eq!(match_pattern("/a/{id}", "/a/b/c"), None);
    }

    #[test]
    fn routes_merge_methods_of_the_same_pattern() {
        let router = Router::new()
            .get("/show", |_: &Request| Response::new(200))
            .post("/show", |_: &Request| Response::new(200));
        let routes = router.routes();
        assert_eq!(routes.len(), 1);
        assert_eq!(
            routes[0].methods,
            vec!["GET".to_string(), "POST".to_string()]
        );
    }

    #[test]
    fn dispatch_by_host_route_ignores_the_path() {
        let router = Router::new().get("/x/{id}", |r: &Request| {
            Response::text(200, r.param("id").unwrap_or(""))
        });
        let mut r = req("GET", "/prefix/x/1");
        r.route = "/x/{id}".into();
        r.params = vec![("id".into(), "1".into())];
        assert_eq!(router.dispatch(&r).body_text(), "1");
        assert_eq!(router.dispatch(&req("POST", "/x/1")).status, 404);
    }
}
