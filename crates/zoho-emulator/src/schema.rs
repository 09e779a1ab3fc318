//! The two CRM modules the emulator serves and their fields, as `/settings/fields` describes them.
//!
//! Only Contacts and Leads exist: they are what pledgesync reads. Every other module name answers
//! `INVALID_MODULE`, which a client asking for, say, Deals must handle anyway.

use serde_json::{json, Value};

/// A CRM module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Module {
    /// `Contacts`.
    Contacts,
    /// `Leads`.
    Leads,
}

impl Module {
    /// Both modules, in the order `/settings/modules` lists them.
    pub const ALL: [Module; 2] = [Module::Leads, Module::Contacts];

    /// Resolves a module API name as it appears in a URL; Zoho matches these case-insensitively.
    pub fn parse(name: &str) -> Option<Module> {
        Module::ALL
            .into_iter()
            .find(|m| m.api_name().eq_ignore_ascii_case(name))
    }

    /// The API name (`Contacts`).
    pub fn api_name(self) -> &'static str {
        match self {
            Module::Contacts => "Contacts",
            Module::Leads => "Leads",
        }
    }

    /// The singular label (`Contact`).
    pub fn singular(self) -> &'static str {
        match self {
            Module::Contacts => "Contact",
            Module::Leads => "Lead",
        }
    }

    /// A small number mixed into ids and generator hashes so the modules never collide.
    pub fn tag(self) -> u64 {
        match self {
            Module::Contacts => 1,
            Module::Leads => 2,
        }
    }

    /// The module's fields, system `$` fields last.
    pub fn fields(self) -> &'static [FieldDef] {
        match self {
            Module::Contacts => CONTACT_FIELDS,
            Module::Leads => LEAD_FIELDS,
        }
    }

    /// Looks a field up by API name (exact case, as Zoho's field API names are).
    pub fn field(self, api_name: &str) -> Option<&'static FieldDef> {
        self.fields().iter().find(|f| f.api_name == api_name)
    }
}

/// How a field's value is produced for a generated record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Owner` lookup `{name,id,email}`.
    Owner,
    /// `Created_By` lookup.
    CreatedBy,
    /// `Modified_By` lookup.
    ModifiedBy,
    /// `First_Name`.
    FirstName,
    /// `Last_Name`.
    LastName,
    /// `Full_Name` (read-only, derived from the two names).
    FullName,
    /// `Email`.
    Email,
    /// `Secondary_Email`.
    SecondaryEmail,
    /// `Phone`.
    Phone,
    /// `Mobile`.
    Mobile,
    /// `Account_Name` lookup `{name,id}` (Contacts).
    AccountName,
    /// `Company` (Leads).
    Company,
    /// `Lead_Source` pick list.
    LeadSource,
    /// `Lead_Status` pick list (Leads).
    LeadStatus,
    /// `Mailing_Country` (Contacts) or `Country` (Leads).
    Country,
    /// `Email_Opt_Out`.
    OptOut,
    /// `Description`.
    Description,
    /// `Tag` array.
    Tag,
    /// `Created_Time`.
    CreatedTime,
    /// `Modified_Time`.
    ModifiedTime,
    /// `Last_Activity_Time`.
    LastActivityTime,
    /// `Converted__s` (Leads).
    Converted,
    /// `Converted_Date_Time` (Leads).
    ConvertedTime,
    /// `$approved`.
    Approved,
    /// `$editable`.
    Editable,
    /// `$approval_state`.
    ApprovalState,
    /// `$converted` (Leads).
    DollarConverted,
}

/// One field of a module.
#[derive(Debug)]
pub struct FieldDef {
    /// API name, e.g. `Email`.
    pub api_name: &'static str,
    /// Label shown in the CRM UI.
    pub label: &'static str,
    /// Zoho's `data_type` (`text`, `email`, `ownerlookup`…).
    pub data_type: &'static str,
    /// Zoho's `json_type` (`string`, `boolean`, `jsonobject`…).
    pub json_type: &'static str,
    /// Maximum length as `/settings/fields` reports it.
    pub length: u32,
    /// Whether the field cannot be written by users.
    pub read_only: bool,
    /// Whether the CRM requires it on create.
    pub mandatory: bool,
    /// How the generator fills it.
    pub kind: Kind,
    /// Pick-list values, empty for other types.
    pub picklist: &'static [&'static str],
}

impl FieldDef {
    /// System fields (`$…`) are requestable but `/settings/fields` does not list them.
    pub fn is_system(&self) -> bool {
        self.api_name.starts_with('$')
    }

    /// The `/settings/fields` entry for this field; `index` makes a stable id.
    pub fn describe(&self, module: Module, index: usize) -> Value {
        let picks: Vec<Value> = self
            .picklist
            .iter()
            .map(|v| json!({"display_value": v, "actual_value": v}))
            .collect();
        json!({
            "id": format!("{}", 5_725_767_000_000_002_000u64 + module.tag() * 100 + index as u64),
            "api_name": self.api_name,
            "field_label": self.label,
            "display_label": self.label,
            "data_type": self.data_type,
            "json_type": self.json_type,
            "length": self.length,
            "read_only": self.read_only,
            "system_mandatory": self.mandatory,
            "custom_field": false,
            "visible": true,
            "lookup": {},
            "pick_list_values": picks,
        })
    }
}

/// Pick-list values of `Lead_Source`, as in a fresh Zoho CRM org.
#[rustfmt::skip]
pub const LEAD_SOURCES: &[&str] = &[
    "Advertisement", "Cold Call", "Employee Referral", "External Referral", "Online Store",
    "Partner", "Public Relations", "Sales Email Alias", "Seminar Partner", "Internal Seminar",
    "Trade Show", "Web Download", "Web Research", "Chat",
];

/// Pick-list values of `Lead_Status`.
#[rustfmt::skip]
pub const LEAD_STATUSES: &[&str] = &[
    "Attempted to Contact", "Contact in Future", "Contacted", "Junk Lead", "Lost Lead",
    "Not Contacted", "Pre-Qualified", "Not Qualified",
];

/// Shorthand for the field tables below.
const fn f(
    api_name: &'static str,
    label: &'static str,
    data_type: &'static str,
    json_type: &'static str,
    length: u32,
    read_only: bool,
    kind: Kind,
) -> FieldDef {
    FieldDef {
        api_name,
        label,
        data_type,
        json_type,
        length,
        read_only,
        mandatory: false,
        kind,
        picklist: &[],
    }
}

/// Marks a field mandatory.
const fn mandatory(mut def: FieldDef) -> FieldDef {
    def.mandatory = true;
    def
}

/// Attaches pick-list values.
const fn picks(mut def: FieldDef, values: &'static [&'static str]) -> FieldDef {
    def.picklist = values;
    def
}

/// Contacts fields.
#[rustfmt::skip]
static CONTACT_FIELDS: &[FieldDef] = &[
    f("Owner", "Contact Owner", "ownerlookup", "jsonobject", 120, false, Kind::Owner),
    f("First_Name", "First Name", "text", "string", 40, false, Kind::FirstName),
    mandatory(f("Last_Name", "Last Name", "text", "string", 80, false, Kind::LastName)),
    f("Full_Name", "Full Name", "text", "string", 120, true, Kind::FullName),
    f("Email", "Email", "email", "string", 100, false, Kind::Email),
    f("Secondary_Email", "Secondary Email", "email", "string", 100, false, Kind::SecondaryEmail),
    f("Phone", "Phone", "phone", "string", 30, false, Kind::Phone),
    f("Mobile", "Mobile", "phone", "string", 30, false, Kind::Mobile),
    f("Account_Name", "Account Name", "lookup", "jsonobject", 120, false, Kind::AccountName),
    picks(f("Lead_Source", "Lead Source", "picklist", "string", 120, false, Kind::LeadSource), LEAD_SOURCES),
    f("Mailing_Country", "Mailing Country", "text", "string", 100, false, Kind::Country),
    f("Email_Opt_Out", "Email Opt Out", "boolean", "boolean", 5, false, Kind::OptOut),
    f("Description", "Description", "textarea", "string", 32000, false, Kind::Description),
    f("Tag", "Tag", "text", "jsonarray", 2000, false, Kind::Tag),
    f("Created_By", "Created By", "ownerlookup", "jsonobject", 120, true, Kind::CreatedBy),
    f("Modified_By", "Modified By", "ownerlookup", "jsonobject", 120, true, Kind::ModifiedBy),
    f("Created_Time", "Created Time", "datetime", "string", 120, true, Kind::CreatedTime),
    f("Modified_Time", "Modified Time", "datetime", "string", 120, true, Kind::ModifiedTime),
    f("Last_Activity_Time", "Last Activity Time", "datetime", "string", 120, true, Kind::LastActivityTime),
    f("$approved", "", "boolean", "boolean", 5, true, Kind::Approved),
    f("$editable", "", "boolean", "boolean", 5, true, Kind::Editable),
    f("$approval_state", "", "text", "string", 20, true, Kind::ApprovalState),
];

/// Leads fields.
#[rustfmt::skip]
static LEAD_FIELDS: &[FieldDef] = &[
    f("Owner", "Lead Owner", "ownerlookup", "jsonobject", 120, false, Kind::Owner),
    f("First_Name", "First Name", "text", "string", 40, false, Kind::FirstName),
    mandatory(f("Last_Name", "Last Name", "text", "string", 80, false, Kind::LastName)),
    f("Full_Name", "Full Name", "text", "string", 120, true, Kind::FullName),
    f("Email", "Email", "email", "string", 100, false, Kind::Email),
    f("Secondary_Email", "Secondary Email", "email", "string", 100, false, Kind::SecondaryEmail),
    f("Phone", "Phone", "phone", "string", 30, false, Kind::Phone),
    f("Mobile", "Mobile", "phone", "string", 30, false, Kind::Mobile),
    mandatory(f("Company", "Company", "text", "string", 200, false, Kind::Company)),
    picks(f("Lead_Source", "Lead Source", "picklist", "string", 120, false, Kind::LeadSource), LEAD_SOURCES),
    picks(f("Lead_Status", "Lead Status", "picklist", "string", 120, false, Kind::LeadStatus), LEAD_STATUSES),
    f("Country", "Country", "text", "string", 100, false, Kind::Country),
    f("Email_Opt_Out", "Email Opt Out", "boolean", "boolean", 5, false, Kind::OptOut),
    f("Description", "Description", "textarea", "string", 32000, false, Kind::Description),
    f("Tag", "Tag", "text", "jsonarray", 2000, false, Kind::Tag),
    f("Created_By", "Created By", "ownerlookup", "jsonobject", 120, true, Kind::CreatedBy),
    f("Modified_By", "Modified By", "ownerlookup", "jsonobject", 120, true, Kind::ModifiedBy),
    f("Created_Time", "Created Time", "datetime", "string", 120, true, Kind::CreatedTime),
    f("Modified_Time", "Modified Time", "datetime", "string", 120, true, Kind::ModifiedTime),
    f("Last_Activity_Time", "Last Activity Time", "datetime", "string", 120, true, Kind::LastActivityTime),
    f("Converted__s", "Is Converted", "boolean", "boolean", 5, true, Kind::Converted),
    f("Converted_Date_Time", "Converted Date Time", "datetime", "string", 120, true, Kind::ConvertedTime),
    f("$approved", "", "boolean", "boolean", 5, true, Kind::Approved),
    f("$editable", "", "boolean", "boolean", 5, true, Kind::Editable),
    f("$approval_state", "", "text", "string", 20, true, Kind::ApprovalState),
    f("$converted", "", "boolean", "boolean", 5, true, Kind::DollarConverted),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_parse_case_insensitively() {
        assert_eq!(Module::parse("contacts"), Some(Module::Contacts));
        assert_eq!(Module::parse("LEADS"), Some(Module::Leads));
        assert_eq!(Module::parse("Deals"), None);
    }

    #[test]
    fn field_names_are_unique_per_module() {
        for module in Module::ALL {
            let mut names: Vec<_> = module.fields().iter().map(|f| f.api_name).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "{module:?}");
            assert!(module.field("Email").is_some());
        }
    }
}
