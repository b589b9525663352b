//! The public route table, built from every plugin's manifest at start-up.
//!
//! Patterns use axum's syntax: literal segments, `{name}`, and a final
//! `{*name}`. Each plugin's patterns are mounted under its configured prefix.
//!
//! Two plugins conflict when one of their patterns can match the same path
//! as the other's (`/a/{id}` and `/a/stats` overlap), unless the two patterns
//! are identical and their methods are disjoint: then one path serves both,
//! by method. Anything else would make the router pick a plugin by matching
//! rules rather than by configuration, so it fails start-up, naming both.

use std::collections::{BTreeMap, BTreeSet};

/// Methods a plugin may claim.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Wildcard(String),
}

/// One (method set, pattern) claim of one plugin, validated.
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    /// Index of the plugin in the runtime's plugin list.
    pub plugin: usize,
    /// The pattern as the plugin declared it (handed back to it per request).
    pub pattern: String,
    /// Prefix + pattern: what the public router matches.
    pub full_path: String,
    pub methods: BTreeSet<String>,
    segments: Vec<Segment>,
}

/// What is wrong with a declared route.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RouteProblem {
    #[error("the pattern must start with `/`")]
    NoLeadingSlash,
    #[error("empty path segment")]
    EmptySegment,
    #[error("parameter `{0}` needs a name of letters, digits or `_`")]
    BadParameterName(String),
    #[error("segment `{0}` has a reserved character")]
    ReservedCharacter(String),
    #[error("a `{{*name}}` segment must come last")]
    WildcardNotLast,
    #[error("parameter `{0}` appears twice")]
    DuplicateParameter(String),
    #[error("no methods")]
    NoMethods,
    #[error("unsupported method `{0}`")]
    UnsupportedMethod(String),
    #[error("`{0}` is declared twice")]
    MethodDeclaredTwice(String),
    /// A rule of the router itself (e.g. one parameter name per position).
    #[error(transparent)]
    Router(#[from] matchit::InsertError),
}

/// What is wrong with a configured prefix.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    #[error("prefix `{0}` must start with `/`")]
    NoLeadingSlash(String),
    #[error("prefix `{0}` must be literal path segments")]
    NotLiteral(String),
}

/// Why a route table could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("plugin `{plugin}` declares an invalid route `{route}`: {reason}")]
    Invalid {
        plugin: String,
        route: String,
        reason: RouteProblem,
    },
    #[error(
        "plugins `{first}` and `{second}` both claim route `{route}` (as `{first_route}` and `{second_route}`)"
    )]
    Conflict {
        first: String,
        second: String,
        route: String,
        first_route: String,
        second_route: String,
    },
}

/// Normalises a configured prefix: "" (none) or "/a/b" without a trailing slash.
pub(crate) fn normalize_prefix(prefix: Option<&str>) -> Result<String, PrefixError> {
    let Some(prefix) = prefix.map(str::trim).filter(|p| !p.is_empty() && *p != "/") else {
        return Ok(String::new());
    };
    if !prefix.starts_with('/') {
        return Err(PrefixError::NoLeadingSlash(prefix.to_owned()));
    }
    let trimmed = prefix.trim_end_matches('/');
    for segment in trimmed[1..].split('/') {
        match parse_segment(segment) {
            Ok(Segment::Literal(_)) => {}
            _ => return Err(PrefixError::NotLiteral(prefix.to_owned())),
        }
    }
    Ok(trimmed.to_owned())
}

fn parse_segment(segment: &str) -> Result<Segment, RouteProblem> {
    if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        let (wildcard, name) = match inner.strip_prefix('*') {
            Some(name) => (true, name),
            None => (false, inner),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RouteProblem::BadParameterName(segment.to_owned()));
        }
        return Ok(if wildcard {
            Segment::Wildcard(name.into())
        } else {
            Segment::Param(name.into())
        });
    }
    if segment.is_empty() {
        return Err(RouteProblem::EmptySegment);
    }
    if segment.contains(['{', '}', '?', '#']) || segment.starts_with([':', '*']) {
        return Err(RouteProblem::ReservedCharacter(segment.to_owned()));
    }
    Ok(Segment::Literal(segment.into()))
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, RouteProblem> {
    let rest = pattern
        .strip_prefix('/')
        .ok_or(RouteProblem::NoLeadingSlash)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let segments = rest
        .split('/')
        .map(parse_segment)
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    for (i, s) in segments.iter().enumerate() {
        match s {
            Segment::Wildcard(_) if i + 1 != segments.len() => {
                return Err(RouteProblem::WildcardNotLast);
            }
            Segment::Param(n) | Segment::Wildcard(n) if !names.insert(n.clone()) => {
                return Err(RouteProblem::DuplicateParameter(n.clone()));
            }
            _ => {}
        }
    }
    Ok(segments)
}

/// Whether some request path matches both patterns.
fn overlaps(a: &[Segment], b: &[Segment]) -> bool {
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (None, None) => return true,
            // A wildcard takes one or more further segments.
            (Some(Segment::Wildcard(_)), Some(_)) | (Some(_), Some(Segment::Wildcard(_))) => {
                return true;
            }
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x != y => return false,
            _ => i += 1,
        }
    }
}

/// Validates `routes` (method list, pattern) of the plugin at `index`.
pub(crate) fn claims(
    index: usize,
    plugin: &str,
    prefix: &str,
    routes: &[(Vec<String>, String)],
) -> Result<Vec<Claim>, RouteError> {
    let invalid = |route: &str, reason: RouteProblem| RouteError::Invalid {
        plugin: plugin.into(),
        route: route.into(),
        reason,
    };
    let mut out: Vec<Claim> = Vec::new();
    for (methods, pattern) in routes {
        let mut segments = parse_pattern(pattern).map_err(|r| invalid(pattern, r))?;
        if methods.is_empty() {
            return Err(invalid(pattern, RouteProblem::NoMethods));
        }
        let mut set = BTreeSet::new();
        for m in methods {
            let m = m.to_ascii_uppercase();
            if !METHODS.contains(&m.as_str()) {
                return Err(invalid(pattern, RouteProblem::UnsupportedMethod(m)));
            }
            set.insert(m);
        }
        if let Some(existing) = out.iter().find(|c| c.pattern == *pattern)
            && let Some(m) = existing.methods.intersection(&set).next()
        {
            return Err(invalid(
                pattern,
                RouteProblem::MethodDeclaredTwice(m.clone()),
            ));
        }
        let mut full = prefix.to_owned();
        full.push_str(if pattern == "/" && !prefix.is_empty() {
            ""
        } else {
            pattern
        });
        if full.is_empty() {
            full.push('/');
        }
        let mut prefixed: Vec<Segment> = prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| Segment::Literal(s.into()))
            .collect();
        prefixed.append(&mut segments);
        out.push(Claim {
            plugin: index,
            pattern: pattern.clone(),
            full_path: full,
            methods: set,
            segments: prefixed,
        });
    }
    Ok(out)
}

/// Checks claims of different plugins against each other and against the
/// router's own rules. `names[i]` is plugin `i`'s name.
pub(crate) fn check_conflicts(all: &[Claim], names: &[String]) -> Result<(), RouteError> {
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.plugin == b.plugin || !overlaps(&a.segments, &b.segments) {
                continue;
            }
            let shared_path = a.full_path == b.full_path;
            let shared_method = a.methods.intersection(&b.methods).next().cloned();
            if shared_path && shared_method.is_none() {
                continue;
            }
            let method = shared_method
                .unwrap_or_else(|| a.methods.iter().next().cloned().unwrap_or_default());
            return Err(RouteError::Conflict {
                first: names[a.plugin].clone(),
                second: names[b.plugin].clone(),
                route: format!("{method} {}", a.full_path),
                first_route: a.full_path.clone(),
                second_route: b.full_path.clone(),
            });
        }
    }
    // The router (matchit) has rules of its own, e.g. one parameter name per
    // position; check them here so mounting never panics.
    let mut router = matchit::Router::new();
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    for claim in all {
        if owners.insert(&claim.full_path, claim.plugin).is_none() {
            router
                .insert(claim.full_path.clone(), ())
                .map_err(|e| RouteError::Invalid {
                    plugin: names[claim.plugin].clone(),
                    route: claim.pattern.clone(),
                    reason: RouteProblem::Router(e),
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(methods: &[&str], path: &str) -> (Vec<String>, String) {
        (
            methods.iter().map(|m| m.to_string()).collect(),
            path.to_string(),
        )
    }

    /// (plugin name, prefix, declared routes).
    type Mount<'a> = (&'a str, &'a str, Vec<(Vec<String>, String)>);

    fn table(plugins: &[Mount<'_>]) -> Result<Vec<Claim>, RouteError> {
        let names: Vec<String> = plugins.iter().map(|p| p.0.to_string()).collect();
        let mut all = Vec::new();
        for (i, (name, prefix, routes)) in plugins.iter().enumerate() {
            all.extend(claims(i, name, prefix, routes)?);
        }
        check_conflicts(&all, &names)?;
        Ok(all)
    }

    #[test]
    fn same_route_in_two_plugins_is_a_conflict_naming_both() {
        let err = table(&[
            ("alpha", "", vec![route(&["POST"], "/api/v1/invoices")]),
            (
                "beta",
                "",
                vec![route(&["POST", "GET"], "/api/v1/invoices")],
            ),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugins `alpha` and `beta` both claim route `POST /api/v1/invoices` \
             (as `/api/v1/invoices` and `/api/v1/invoices`)"
        );
    }

    #[test]
    fn overlapping_patterns_of_two_plugins_conflict_even_with_other_methods() {
        let err = table(&[
            ("alpha", "", vec![route(&["GET"], "/x/{id}")]),
            ("beta", "", vec![route(&["POST"], "/x/stats")]),
        ])
        .unwrap_err();
        assert!(
            matches!(err, RouteError::Conflict { ref first, ref second, .. } if first == "alpha" && second == "beta")
        );
    }

    #[test]
    fn identical_path_with_disjoint_methods_is_shared() {
        table(&[
            ("alpha", "", vec![route(&["GET"], "/x")]),
            ("beta", "", vec![route(&["POST"], "/x")]),
        ])
        .unwrap();
    }

    #[test]
    fn prefixes_separate_otherwise_identical_plugins() {
        let all = table(&[
            ("a", "/a", vec![route(&["GET"], "/{*rest}")]),
            ("b", "/b", vec![route(&["GET"], "/{*rest}")]),
        ])
        .unwrap();
        assert_eq!(all[0].full_path, "/a/{*rest}");
    }

    #[test]
    fn wildcard_overlaps_longer_literal_paths() {
        assert!(
            table(&[
                ("a", "", vec![route(&["GET"], "/p/{*rest}")]),
                ("b", "", vec![route(&["GET"], "/p/q/r")])
            ])
            .is_err()
        );
        assert!(
            table(&[
                ("a", "", vec![route(&["GET"], "/p/{*rest}")]),
                ("b", "", vec![route(&["GET"], "/p")])
            ])
            .is_ok()
        );
    }

    #[test]
    fn malformed_routes_are_rejected_with_the_reason() {
        for (methods, path) in [
            (&["GET"][..], "no-slash"),
            (&["GET"][..], "/a//b"),
            (&["GET"][..], "/:id"),
            (&["GET"][..], "/{*rest}/more"),
            (&["GET"][..], "/{id}/{id}"),
            (&["BREW"][..], "/coffee"),
            (&[][..], "/none"),
        ] {
            let r = claims(0, "p", "", &[route(methods, path)]);
            assert!(
                matches!(r, Err(RouteError::Invalid { .. })),
                "{path} accepted"
            );
        }
    }

    #[test]
    fn a_method_declared_twice_for_one_pattern_is_rejected() {
        let r = claims(
            0,
            "p",
            "",
            &[route(&["GET"], "/a"), route(&["GET", "POST"], "/a")],
        );
        assert!(matches!(r, Err(RouteError::Invalid { .. })));
    }

    #[test]
    fn router_rules_are_checked_before_mounting() {
        // Within one plugin, matchit refuses a parameter and a wildcard at the
        // same position, and one shape under two parameter names; axum would panic.
        for pair in [["/a/{*rest}", "/a/{id}"], ["/a/{id}", "/a/{key}"]] {
            let routes = pair.iter().map(|p| route(&["GET"], p)).collect();
            let err = table(&[("p", "", routes)]).unwrap_err();
            assert!(matches!(err, RouteError::Invalid { .. }), "{err}");
        }
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalize_prefix(None).unwrap(), "");
        assert_eq!(normalize_prefix(Some("/")).unwrap(), "");
        assert_eq!(normalize_prefix(Some("/v2/")).unwrap(), "/v2");
        assert!(normalize_prefix(Some("v2")).is_err());
        assert!(normalize_prefix(Some("/{x}")).is_err());
    }
}
