//! OAuth scopes: the grammar the API Console accepts and what each scope lets a token read.
//!
//! Grammar (reference §3): `ZohoCRM.{group}.{operation}` or `ZohoCRM.{group}.{sub}.{operation}`
//! with operation `ALL|READ|CREATE|UPDATE|DELETE`, plus `aaaserver.profile.READ`. Matching is
//! case-insensitive because Zoho's own samples mix `contacts` and `Contacts`.

use crate::schema::Module;

/// CRM scope groups that the console accepts.
const GROUPS: &[&str] = &[
    "modules",
    "org",
    "users",
    "settings",
    "bulk",
    "coql",
    "notifications",
    "files",
    "functions",
    "mass_update",
    "share",
    "templates",
];

/// Operations a scope may end with.
const OPERATIONS: &[&str] = &["ALL", "READ", "CREATE", "UPDATE", "DELETE", "WRITE"];

/// One parsed scope such as `ZohoCRM.modules.contacts.READ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The text as the creator typed it, echoed back in token responses.
    pub text: String,
    /// The service part, lower-cased (`zohocrm`, `aaaserver`).
    service: String,
    /// The group, lower-cased (`modules`, `org`, `settings`…).
    group: String,
    /// The optional sub-group, lower-cased (`contacts`, `fields`…).
    sub: Option<String>,
    /// The operation, upper-cased (`ALL`, `READ`…).
    op: String,
}

/// What an API call needs from the token's scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Reading records, deleted records or counts of one module.
    ModuleRead(Module),
    /// `GET /crm/v8/org`.
    OrgRead,
    /// `GET /crm/v8/users`.
    UsersRead,
    /// `GET /crm/v8/settings/modules[/{api_name}]`.
    SettingsModulesRead,
    /// `GET /crm/v8/settings/fields`.
    SettingsFieldsRead,
}

/// The scopes granted to a code and the tokens minted from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a comma- (console) or space- (OAuth) separated scope list; rejects unknown scopes
    /// with a message naming the first bad one.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let mut scopes = Vec::new();
        for part in text
            .split([',', ' '])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let scope = parse_one(part).ok_or_else(|| format!("invalid OAuth scope {part:?}"))?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("at least one scope is required".to_string());
        }
        Ok(Scopes(scopes))
    }

    /// The scopes as the token endpoint reports them (space-separated, as in OAuth).
    pub fn to_response_string(&self) -> String {
        self.0
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether these scopes allow a call that needs `need`.
    pub fn allows(&self, need: Need) -> bool {
        self.0.iter().any(|s| s.allows(need))
    }
}

impl Scope {
    /// Whether this one scope covers `need` (only reads are emulated, so ALL and READ count).
    fn allows(&self, need: Need) -> bool {
        if self.service != "zohocrm" || !(self.op == "ALL" || self.op == "READ") {
            return false;
        }
        let sub = self.sub.as_deref();
        match need {
            Need::ModuleRead(module) => {
                self.group == "modules"
                    && (sub.is_none()
                        || sub == Some(module.api_name().to_ascii_lowercase().as_str()))
            }
            Need::OrgRead => self.group == "org" && sub.is_none(),
            Need::UsersRead => self.group == "users" && sub.is_none(),
            Need::SettingsModulesRead => {
                self.group == "settings" && (sub.is_none() || sub == Some("modules"))
            }
            Need::SettingsFieldsRead => {
                self.group == "settings" && (sub.is_none() || sub == Some("fields"))
            }
        }
    }
}

/// Parses one scope, or `None` if the console would reject it.
fn parse_one(text: &str) -> Option<Scope> {
    let parts: Vec<&str> = text.split('.').collect();
    let (service, group, sub, op) = match parts.as_slice() {
        [service, group, op] => (*service, *group, None, *op),
        [service, group, sub, op] => (*service, *group, Some(*sub), *op),
        _ => return None,
    };
    let op = op.to_ascii_uppercase();
    if !OPERATIONS.contains(&op.as_str()) {
        return None;
    }
    let service = service.to_ascii_lowercase();
    let group = group.to_ascii_lowercase();
    let valid = match service.as_str() {
        "zohocrm" => GROUPS.contains(&group.as_str()),
        "aaaserver" => group == "profile" && sub.is_none(),
        _ => false,
    };
    let sub_ok = sub
        .is_none_or(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    (valid && sub_ok).then(|| Scope {
        text: text.to_string(),
        service,
        group,
        sub: sub.map(str::to_ascii_lowercase),
        op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_scope_reads_records_and_org_but_not_settings() {
        let scopes = Scopes::parse("ZohoCRM.modules.ALL,ZohoCRM.org.READ").expect("valid");
        assert!(scopes.allows(Need::ModuleRead(Module::Contacts)));
        assert!(scopes.allows(Need::ModuleRead(Module::Leads)));
        assert!(scopes.allows(Need::OrgRead));
        assert!(!scopes.allows(Need::UsersRead));
        assert!(!scopes.allows(Need::SettingsModulesRead));
        assert!(!scopes.allows(Need::SettingsFieldsRead));
        assert_eq!(
            scopes.to_response_string(),
            "ZohoCRM.modules.ALL ZohoCRM.org.READ"
        );
    }

    #[test]
    fn module_specific_and_settings_scopes() {
        let scopes = Scopes::parse(
            "ZohoCRM.modules.contacts.READ ZohoCRM.settings.fields.READ,ZohoCRM.users.ALL",
        )
        .expect("valid");
        assert!(scopes.allows(Need::ModuleRead(Module::Contacts)));
        assert!(!scopes.allows(Need::ModuleRead(Module::Leads)));
        assert!(scopes.allows(Need::SettingsFieldsRead));
        assert!(!scopes.allows(Need::SettingsModulesRead));
        assert!(scopes.allows(Need::UsersRead));
        assert!(!scopes.allows(Need::OrgRead));
        let create_only = Scopes::parse("ZohoCRM.modules.CREATE").expect("valid");
        assert!(!create_only.allows(Need::ModuleRead(Module::Contacts)));
    }

    #[test]
    fn rejects_what_the_console_rejects() {
        for bad in [
            "",
            "ZohoCRM.modules",
            "ZohoCRM.nothing.READ",
            "Foo.modules.READ",
            "ZohoCRM.modules.ALLX",
            "ZohoCRM.modules..READ",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Scopes::parse("aaaserver.profile.READ").is_ok());
    }
}
