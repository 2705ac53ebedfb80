//! ReCap (EIP-5573): capabilities a Sign-In with Ethereum message delegates to the
//! key its `URI` names.
//!
//! The last resource of the message is `urn:recap:` and the base64url (no padding) of
//! a JSON object `{"att": {<resource URI>: {<namespace>/<ability>: [<caveat>...]}},
//! "prf": [...]}`. The wallet shows the user the statement, so the statement must end
//! with the text the capabilities generate ([`statement`]): "I further authorize the
//! stated URI to perform the following actions on my behalf: (1) 'ns': 'a', 'b' for
//! 'uri'." — resources in lexical order, one numbered line per namespace, abilities
//! in lexical order. A message whose statement says less than its capabilities grant
//! is refused.
//!
//! Bounds: the encoded object is at most [`MAX_RECAP_BYTES`]; every list it holds is
//! walked at most once.

use crate::IdentityError;
use base64::Engine;
use std::collections::BTreeMap;

/// The resource prefix of an encoded ReCap.
pub const PREFIX: &str = "urn:recap:";
/// The longest encoded ReCap accepted (base64 text).
pub const MAX_RECAP_BYTES: usize = 4_096;
/// What the generated statement starts with.
pub const STATEMENT_HEAD: &str =
    "I further authorize the stated URI to perform the following actions on my behalf:";

/// Decoded capabilities: resource URI → ability (`namespace/name`) → its caveats (the
/// "nota bene" objects, as JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capabilities {
    pub att: BTreeMap<String, BTreeMap<String, Vec<serde_json::Value>>>,
}

fn bad(why: impl Into<String>) -> IdentityError {
    IdentityError::SignIn(why.into())
}

impl Capabilities {
    /// Decodes `urn:recap:<base64url>`.
    pub fn decode(resource: &str) -> Result<Self, IdentityError> {
        let b64 = resource
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad(format!("a ReCap resource starts with {PREFIX:?}")))?;
        if b64.len() > MAX_RECAP_BYTES {
            return Err(bad(format!(
                "the ReCap is {} bytes, over {MAX_RECAP_BYTES}",
                b64.len()
            )));
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| bad("the ReCap is not base64url without padding"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| bad(format!("the ReCap is not JSON: {e}")))?;
        let att = v
            .get("att")
            .and_then(|a| a.as_object())
            .ok_or_else(|| bad("the ReCap has no \"att\" object"))?;
        let mut out = Capabilities::default();
        for (uri, abilities) in att {
            let abilities = abilities.as_object().ok_or_else(|| {
                bad(format!(
                    "the ReCap's abilities for {uri:?} are not an object"
                ))
            })?;
            let mut map = BTreeMap::new();
            for (ability, caveats) in abilities {
                if !ability.contains('/') {
                    return Err(bad(format!(
                        "the ReCap ability {ability:?} is not namespace/name"
                    )));
                }
                let caveats = caveats.as_array().ok_or_else(|| {
                    bad(format!("the ReCap caveats of {ability:?} are not a list"))
                })?;
                map.insert(ability.clone(), caveats.clone());
            }
            out.att.insert(uri.clone(), map);
        }
        Ok(out)
    }

    /// Encodes as the resource `urn:recap:<base64url of the JSON, keys sorted>`.
    pub fn encode(&self) -> String {
        let att: serde_json::Map<String, serde_json::Value> = self
            .att
            .iter()
            .map(|(uri, abilities)| {
                let a: serde_json::Map<String, serde_json::Value> = abilities
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::Array(v.clone())))
                    .collect();
                (uri.clone(), serde_json::Value::Object(a))
            })
            .collect();
        let v = serde_json::json!({"att": att, "prf": []});
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        )
    }

    /// The statement these capabilities generate (EIP-5573's rule, as above).
    pub fn statement(&self) -> String {
        let mut s = STATEMENT_HEAD.to_string();
        let mut n = 0;
        for (uri, abilities) in &self.att {
            let mut by_ns: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for ability in abilities.keys() {
                let (ns, name) = ability.split_once('/').unwrap_or((ability, ""));
                by_ns.entry(ns).or_default().push(name);
            }
            for (ns, names) in by_ns {
                n += 1;
                let names: Vec<String> = names.iter().map(|a| format!("'{a}'")).collect();
                s.push_str(&format!(" ({n}) '{ns}': {} for '{uri}'.", names.join(", ")));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Capabilities {
        let mut c = Capabilities::default();
        c.att.insert(
            "urn:emc:escrow".into(),
            [(
                "emc/spend".to_string(),
                vec![serde_json::json!({"limit": "1000", "apps": ["echo"]})],
            )]
            .into(),
        );
        c.att.insert(
            "https://example.com".into(),
            [
                ("example/read".to_string(), vec![]),
                ("example/append".to_string(), vec![]),
                ("other/act".to_string(), vec![]),
            ]
            .into(),
        );
        c
    }

    #[test]
    fn a_recap_round_trips_and_states_what_it_grants_in_the_eips_order() {
        let c = caps();
        let back = Capabilities::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            c.statement(),
            "I further authorize the stated URI to perform the following actions on my behalf: \
             (1) 'example': 'append', 'read' for 'https://example.com'. \
             (2) 'other': 'act' for 'https://example.com'. \
             (3) 'emc': 'spend' for 'urn:emc:escrow'."
        );
    }

    #[test]
    fn broken_recaps_say_why() {
        for (r, why) in [
            ("urn:other:abc", "starts with"),
            ("urn:recap:!!", "base64url"),
            ("urn:recap:bm90IGpzb24", "not JSON"),
            ("urn:recap:e30", "no \"att\""),
        ] {
            let e = Capabilities::decode(r).unwrap_err().to_string();
            assert!(e.contains(why), "{r}: {e}");
        }
        let long = format!("{PREFIX}{}", "A".repeat(MAX_RECAP_BYTES + 1));
        assert!(Capabilities::decode(&long)
            .unwrap_err()
            .to_string()
            .contains("over"));
    }
}
