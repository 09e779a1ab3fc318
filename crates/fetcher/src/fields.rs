//! The Zoho fields requested per module: the one place that says what a sync reads.
//!
//! Zoho answers a list call with `id` plus exactly the requested fields, and refuses more than 50
//! (`LIMIT_EXCEEDED`), so the lists are short and fixed. The sink maps these fields into members;
//! adding one here is how a new member attribute starts.

use pledgesync_core::Module;

/// Zoho's limit on the `fields` parameter of one call.
pub const MAX_FIELDS: usize = 50;

/// Fields read from Contacts.
pub const CONTACT_FIELDS: &[&str] = &[
    "Email",
    "Secondary_Email",
    "First_Name",
    "Last_Name",
    "Phone",
    "Mobile",
    "Mailing_Country",
    "Email_Opt_Out",
    "Lead_Source",
    "Owner",
    "Created_Time",
    "Modified_Time",
];

/// Fields read from Leads.
pub const LEAD_FIELDS: &[&str] = &[
    "Email",
    "Secondary_Email",
    "First_Name",
    "Last_Name",
    "Phone",
    "Mobile",
    "Country",
    "Company",
    "Lead_Source",
    "Email_Opt_Out",
    "Owner",
    "Created_Time",
    "Modified_Time",
];

/// The fields a sync requests from `module`.
pub fn for_module(module: Module) -> &'static [&'static str] {
    match module {
        Module::Contacts => CONTACT_FIELDS,
        Module::Leads => LEAD_FIELDS,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn lists_respect_zohos_limit_and_carry_what_the_sink_needs() {
        for module in Module::ALL {
            let fields = for_module(module);
            assert!(
                fields.len() <= MAX_FIELDS,
                "{module}: {} fields",
                fields.len()
            );
            let unique: HashSet<_> = fields.iter().collect();
            assert_eq!(unique.len(), fields.len(), "{module} repeats a field");
            for needed in [
                "Email",
                "Secondary_Email",
                "Email_Opt_Out",
                "Modified_Time",
                "First_Name",
                "Last_Name",
            ] {
                assert!(fields.contains(&needed), "{module} lacks {needed}");
            }
            // `id` always comes back; asking for it is not needed.
            assert!(!fields.contains(&"id"));
        }
        assert!(CONTACT_FIELDS.contains(&"Mailing_Country"));
        assert!(LEAD_FIELDS.contains(&"Country") && LEAD_FIELDS.contains(&"Company"));
    }
}
