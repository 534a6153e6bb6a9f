//! Cloud identifiers parsed by their grammar, never matched by "contains" and never
//! pasted into a URL: an ARM resource id, an Azure scope, an EC2 instance or
//! security-group id and an AWS region. Every field of an event is written by someone Reflex does not
//! trust; an id that does not match its grammar exactly is bad input.

use std::fmt;

/// Characters an ARM name segment may never hold: they would change the meaning
/// of a URL (`@` the authority, `?` the query, `#` the fragment, `\` and `%` the
/// path) or of the id itself.
const FORBIDDEN_IN_NAME: &[char] = &['@', '?', '#', '\\', '%', '/', '&', '<', '>', '"', '\''];

/// The longest ARM id Reflex accepts (ARM's own limit for most types is far lower).
const MAX_ID_LEN: usize = 2048;

/// Why an id was refused, for a one-line error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError(pub String);

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdError {}

fn bad(why: impl Into<String>) -> IdError {
    IdError(why.into())
}

/// Whether `s` is a GUID: `8-4-4-4-12` hexadecimal digits.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks one ARM name segment (a resource group, a resource name, a child name):
/// non-empty, at most 260 characters, no whitespace or control characters, none of
/// [`FORBIDDEN_IN_NAME`], and not `.`, `..` or containing `..`.
pub fn check_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(bad("an empty name segment"));
    }
    if name.chars().count() > 260 {
        return Err(bad("a name segment longer than 260 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || FORBIDDEN_IN_NAME.contains(c))
    {
        return Err(bad(format!("the name `{}` holds {c:?}", shown(name))));
    }
    if name.contains("..") || name == "." {
        return Err(bad(format!("the name `{}` holds `..`", shown(name))));
    }
    Ok(())
}

/// Checks a resource-provider namespace (`Microsoft.Compute`) or type
/// (`virtualMachines`): letters, digits and dots, starting with a letter.
fn check_word(word: &str, what: &str) -> Result<(), IdError> {
    let ok = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && word.len() <= 100
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        && !word.contains("..");
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "`{}` is not a resource {what} (letters, digits and dots)",
            shown(word)
        )))
    }
}

/// At most 80 characters of hostile text, for an error message.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// An ARM resource id, checked against the grammar
/// `/subscriptions/{guid}/resourceGroups/{name}/providers/{namespace}/{type}/{name}[/{type}/{name}]…`,
/// optionally followed by an extension resource
/// (`/providers/{namespace}/{type}/{name}[…]`). Segments are kept as written;
/// comparisons ignore case, as ARM does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    subscription: String,
    resource_group: String,
    /// `(namespace, [(type, name)…])` for the resource and any extension.
    providers: Vec<(String, Vec<(String, String)>)>,
}

impl ResourceId {
    /// Parses an id; the error says what is wrong with it.
    pub fn parse(id: &str) -> Result<Self, IdError> {
        if id.len() > MAX_ID_LEN {
            return Err(bad(format!("a resource id longer than {MAX_ID_LEN} bytes")));
        }
        let Some(rest) = id.strip_prefix('/') else {
            return Err(bad(format!(
                "`{}` is not an ARM resource id (it must start with /subscriptions/)",
                shown(id)
            )));
        };
        let parts: Vec<&str> = rest.strip_suffix('/').unwrap_or(rest).split('/').collect();
        let is = |i: usize, want: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(want));
        if !(is(0, "subscriptions") && is(2, "resourceGroups") && is(4, "providers")) {
            return Err(bad(format!(
                "`{}` is not an ARM resource id (/subscriptions/{{guid}}/resourceGroups/{{name}}/providers/…)",
                shown(id)
            )));
        }
        let subscription = parts[1];
        if !is_guid(subscription) {
            return Err(bad(format!(
                "subscription `{}` is not a GUID",
                shown(subscription)
            )));
        }
        check_name(parts[3])?;
        let mut providers = Vec::new();
        let mut i = 4;
        while i < parts.len() {
            if !is(i, "providers") {
                return Err(bad(format!(
                    "`{}` is not an ARM resource id: expected `providers` at segment {}",
                    shown(id),
                    i + 1
                )));
            }
            let ns = parts
                .get(i + 1)
                .ok_or_else(|| bad("a resource id that ends after `providers`"))?;
            check_word(ns, "provider namespace")?;
            i += 2;
            let mut pairs = Vec::new();
            while i < parts.len() && !is(i, "providers") {
                let (Some(t), Some(n)) = (parts.get(i), parts.get(i + 1)) else {
                    return Err(bad(format!(
                        "`{}` is not an ARM resource id: a type without a name",
                        shown(id)
                    )));
                };
                check_word(t, "type")?;
                check_name(n)?;
                pairs.push(((*t).to_string(), (*n).to_string()));
                i += 2;
            }
            if pairs.is_empty() {
                return Err(bad(format!(
                    "`{}` is not an ARM resource id: no type and name after the namespace",
                    shown(id)
                )));
            }
            providers.push(((*ns).to_string(), pairs));
        }
        Ok(Self {
            subscription: subscription.to_ascii_lowercase(),
            resource_group: parts[3].to_string(),
            providers,
        })
    }

    /// A resource of `namespace/type` named `name` in a resource group (`scope` must
    /// be a resource group).
    pub fn in_group(
        scope: &AzureScope,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Result<Self, IdError> {
        let Some(rg) = &scope.resource_group else {
            return Err(bad("the scope names no resource group"));
        };
        // Checked as one segment first: a `/` in it would otherwise name another
        // resource.
        check_name(name)?;
        Self::parse(&format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/{namespace}/{kind}/{name}",
            scope.subscription
        ))
    }

    /// This id with a child `kind/name` of the last resource (e.g. a rule of an NSG).
    pub fn child(&self, kind: &str, name: &str) -> Result<Self, IdError> {
        check_word(kind, "type")?;
        check_name(name)?;
        let mut out = self.clone();
        if let Some((_, pairs)) = out.providers.last_mut() {
            pairs.push((kind.to_string(), name.to_string()));
        }
        Ok(out)
    }

    /// This id with an extension resource `/providers/{namespace}/{kind}/{name}`.
    pub fn extension(&self, namespace: &str, kind: &str, name: &str) -> Result<Self, IdError> {
        check_word(namespace, "provider namespace")?;
        check_word(kind, "type")?;
        check_name(name)?;
        let mut out = self.clone();
        out.providers.push((
            namespace.to_string(),
            vec![(kind.to_string(), name.to_string())],
        ));
        Ok(out)
    }

    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }

    /// The resource's own (last) name.
    pub fn name(&self) -> &str {
        self.providers
            .last()
            .and_then(|(_, p)| p.last())
            .map_or("", |(_, n)| n.as_str())
    }

    /// Whether the (non-extension) resource is `namespace/t1/…/tn`, ignoring case:
    /// `is_type("Microsoft.Network", &["networkSecurityGroups"])`.
    pub fn is_type(&self, namespace: &str, types: &[&str]) -> bool {
        self.providers.len() == 1
            && self.providers[0].0.eq_ignore_ascii_case(namespace)
            && self.providers[0].1.len() == types.len()
            && self.providers[0]
                .1
                .iter()
                .zip(types)
                .all(|((t, _), want)| t.eq_ignore_ascii_case(want))
    }

    /// The names along the resource's type path (`[nsg]`, `[nsg, rule]`).
    pub fn names(&self) -> Vec<&str> {
        self.providers
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(_, n)| n.as_str()))
            .collect()
    }

    /// The id's segments, for a URL built with a URL type (never with `format!`).
    pub fn segments(&self) -> Vec<&str> {
        let mut out = vec![
            "subscriptions",
            self.subscription.as_str(),
            "resourceGroups",
            self.resource_group.as_str(),
        ];
        for (ns, pairs) in &self.providers {
            out.push("providers");
            out.push(ns);
            for (t, n) in pairs {
                out.push(t);
                out.push(n);
            }
        }
        out
    }

    /// Whether the resource lies inside `scope` (its subscription, and its resource
    /// group when the scope names one).
    pub fn within(&self, scope: &AzureScope) -> bool {
        self.subscription.eq_ignore_ascii_case(&scope.subscription)
            && scope
                .resource_group
                .as_ref()
                .is_none_or(|rg| rg.eq_ignore_ascii_case(&self.resource_group))
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in self.segments() {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// A subscription or resource-group scope: `/subscriptions/{guid}[/resourceGroups/{name}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureScope {
    pub subscription: String,
    pub resource_group: Option<String>,
}

impl AzureScope {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let t = raw.trim();
        let parts: Vec<&str> = t
            .strip_prefix('/')
            .map(|r| r.strip_suffix('/').unwrap_or(r).split('/').collect())
            .unwrap_or_default();
        let is = |i: usize, want: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(want));
        let ok_shape = is(0, "subscriptions")
            && (parts.len() == 2 || (parts.len() == 4 && is(2, "resourceGroups")));
        if !ok_shape {
            return Err(bad(format!(
                "`{}` is not a scope: expected /subscriptions/{{guid}} or /subscriptions/{{guid}}/resourceGroups/{{name}}",
                shown(t)
            )));
        }
        if !is_guid(parts[1]) {
            return Err(bad(format!(
                "subscription `{}` is not a GUID",
                shown(parts[1])
            )));
        }
        let resource_group = match parts.get(3) {
            Some(rg) => {
                check_name(rg)?;
                Some((*rg).to_string())
            }
            None => None,
        };
        Ok(Self {
            subscription: parts[1].to_ascii_lowercase(),
            resource_group,
        })
    }
}

impl fmt::Display for AzureScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/subscriptions/{}", self.subscription)?;
        if let Some(rg) = &self.resource_group {
            write!(f, "/resourceGroups/{rg}")?;
        }
        Ok(())
    }
}

/// Why `id` is left alone under `REFLEX_AZURE_SCOPES` (`scopes`), or `None` when no
/// scope is configured or one of them contains it.
pub fn outside_scopes(scopes: &[AzureScope], id: &ResourceId) -> Option<String> {
    if scopes.is_empty() || scopes.iter().any(|s| id.within(s)) {
        return None;
    }
    let list: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    Some(format!(
        "{id} is outside REFLEX_AZURE_SCOPES ({}): left alone",
        list.join(", ")
    ))
}

/// `{prefix}` and 8 or 17 lower-case hex digits: the grammar of EC2 resource ids.
fn is_ec2_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        (h.len() == 8 || h.len() == 17)
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether `s` is an EC2 instance id: `i-` and 8 or 17 lower-case hex digits.
pub fn is_instance_id(s: &str) -> bool {
    is_ec2_id(s, "i-")
}

/// Whether `s` is a security-group id: `sg-` and 8 or 17 lower-case hex digits.
pub fn is_security_group_id(s: &str) -> bool {
    is_ec2_id(s, "sg-")
}

/// Whether `s` is an AWS region code, `^[a-z]{2}(-[a-z]+)+-\d$` (`eu-west-1`,
/// `us-gov-west-1`, `ap-southeast-5`). Only such a region goes into a console host.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let n = parts.len();
    n >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..n - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[n - 1].len() == 1
        && parts[n - 1].bytes().all(|b| b.is_ascii_digit())
}

/// `region` if it is a region code ([`is_region`]).
pub fn region(s: &str) -> Option<&str> {
    is_region(s).then_some(s)
}

/// A console URL in `region`, or `None` when the region is not a region code: only
/// a checked region goes into the host name. `path` is Reflex's own; `fragment` must
/// already be percent-encoded by the caller where it holds event text.
pub fn aws_console(region: &str, path: &str, fragment: &str) -> Option<String> {
    let r = self::region(region)?;
    Some(format!(
        "https://{r}.console.aws.amazon.com/{path}?region={r}#{fragment}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000000";

    fn vm(name: &str) -> String {
        format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}"
        )
    }

    #[test]
    fn arm_ids_parse_by_their_grammar_in_any_case() {
        let id = ResourceId::parse(&vm("vm-1")).unwrap_or_else(|e| panic!("{e}"));
        assert!(id.is_type("microsoft.compute", &["VIRTUALMACHINES"]));
        assert_eq!(id.name(), "vm-1");
        assert_eq!(id.to_string(), vm("vm-1"));
        let rule = ResourceId::parse(&format!(
            "/subscriptions/{SUB}/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/n/securityrules/r"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(rule.is_type(
            "Microsoft.Network",
            &["networkSecurityGroups", "securityRules"]
        ));
        assert_eq!(rule.names(), ["n", "r"]);
        let ext = id
            .extension("Microsoft.Maintenance", "scheduledevents", "a-b")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ext.to_string()
                .ends_with("/vm-1/providers/Microsoft.Maintenance/scheduledevents/a-b")
        );
        assert_eq!(ResourceId::parse(&ext.to_string()), Ok(ext));
    }

    #[test]
    fn hostile_ids_are_refused_with_the_reason() {
        for hostile in [
            "@evil.example/providers/microsoft.compute/virtualmachines/x".to_string(),
            format!(
                "/subscriptions/{SUB}@evil.example/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"
            ),
            vm("x?api-version=1"),
            vm("x#frag"),
            vm("x\\y"),
            vm("x%2F..%2Fy"),
            vm("a b"),
            vm("a\tb"),
            vm(".."),
            vm("x/../../y"),
            vm(""),
            format!(
                "/subscriptions/{SUB}/resourceGroups//providers/Microsoft.Compute/virtualMachines/x"
            ),
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"
                .into(),
            format!("/subscriptions/{SUB}/resourceGroups/rg"),
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"
            ),
            format!("//evil.example/subscriptions/{SUB}/resourceGroups/rg/providers/A/b/c"),
            format!("https://evil.example/subscriptions/{SUB}/resourceGroups/rg/providers/A/b/c"),
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Micro soft/b/c"),
            String::new(),
            "x".repeat(5000),
        ] {
            let r = ResourceId::parse(&hostile);
            assert!(r.is_err(), "{hostile} parsed as {r:?}");
        }
        assert!(ResourceId::parse(&vm("ok")).is_ok_and(|id| id.child("x", "a@b").is_err()));
    }

    #[test]
    fn scopes_contain_what_is_inside_them() {
        let id = ResourceId::parse(&vm("vm-1")).unwrap_or_else(|e| panic!("{e}"));
        let sub = AzureScope::parse(&format!("/subscriptions/{}", SUB.to_uppercase()));
        assert!(sub.as_ref().is_ok_and(|s| id.within(s)), "{sub:?}");
        let rg = AzureScope::parse(&format!("/subscriptions/{SUB}/resourceGroups/RG"));
        assert!(rg.as_ref().is_ok_and(|s| id.within(s)));
        let other = AzureScope::parse(&format!("/subscriptions/{SUB}/resourceGroups/other"));
        assert!(other.as_ref().is_ok_and(|s| !id.within(s)));
        assert!(AzureScope::parse("/subscriptions/x").is_err());
        assert!(AzureScope::parse(&format!("/subscriptions/{SUB}/resourceGroups/a@b")).is_err());
        let built = AzureScope::parse(&format!("/subscriptions/{SUB}/resourceGroups/rg"))
            .and_then(|s| ResourceId::in_group(&s, "Microsoft.Compute", "virtualMachines", "x?y"));
        assert!(built.is_err());
    }

    #[test]
    fn aws_ids_and_regions_match_their_formats() {
        assert!(is_instance_id("i-0abc1234def567890") && is_instance_id("i-0abc1234"));
        for bad in [
            "i-1",
            "i-0ABC1234DEF567890",
            "i-0abc1234def56789",
            "x-0abc1234",
            "i-0abc1234def567890/x",
        ] {
            assert!(!is_instance_id(bad), "{bad}");
        }
        assert!(
            is_security_group_id("sg-0123456789abcdef0") && is_security_group_id("sg-01234567")
        );
        assert!(!is_security_group_id("sg-x") && !is_security_group_id("sg-0123456789abcdef0 "));
        for r in ["eu-west-1", "us-gov-west-1", "ap-southeast-5", "cn-north-1"] {
            assert!(is_region(r), "{r}");
        }
        for r in [
            "evil.example#",
            "eu-west-1.evil.example",
            "EU-WEST-1",
            "eu-west",
            "e-west-1",
            "eu--1",
            "eu-west-12",
            "",
        ] {
            assert!(!is_region(r), "{r}");
        }
        assert_eq!(
            aws_console("eu-west-1", "ec2/home", "x").as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#x")
        );
        assert_eq!(aws_console("evil.example/", "ec2/home", "x"), None);
    }
}
