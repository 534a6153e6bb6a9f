//! CloudWatch's SNS alarm messages name the Region by its display name ("Asia Pacific
//! (Tokyo)"); links and routing need its code.

/// `(display name, code)`, including the older "EU (…)" names CloudWatch still sends
/// for some alarms.
const REGIONS: &[(&str, &str)] = &[
    ("US East (N. Virginia)", "us-east-1"),
    ("US East (Ohio)", "us-east-2"),
    ("US West (N. California)", "us-west-1"),
    ("US West (Oregon)", "us-west-2"),
    ("Africa (Cape Town)", "af-south-1"),
    ("Asia Pacific (Hong Kong)", "ap-east-1"),
    ("Asia Pacific (Taipei)", "ap-east-2"),
    ("Asia Pacific (Mumbai)", "ap-south-1"),
    ("Asia Pacific (Hyderabad)", "ap-south-2"),
    ("Asia Pacific (Singapore)", "ap-southeast-1"),
    ("Asia Pacific (Sydney)", "ap-southeast-2"),
    ("Asia Pacific (Jakarta)", "ap-southeast-3"),
    ("Asia Pacific (Melbourne)", "ap-southeast-4"),
    ("Asia Pacific (Malaysia)", "ap-southeast-5"),
    ("Asia Pacific (New Zealand)", "ap-southeast-6"),
    ("Asia Pacific (Thailand)", "ap-southeast-7"),
    ("Asia Pacific (Tokyo)", "ap-northeast-1"),
    ("Asia Pacific (Seoul)", "ap-northeast-2"),
    ("Asia Pacific (Osaka)", "ap-northeast-3"),
    ("Canada (Central)", "ca-central-1"),
    ("Canada West (Calgary)", "ca-west-1"),
    ("Europe (Frankfurt)", "eu-central-1"),
    ("EU (Frankfurt)", "eu-central-1"),
    ("Europe (Zurich)", "eu-central-2"),
    ("Europe (Ireland)", "eu-west-1"),
    ("EU (Ireland)", "eu-west-1"),
    ("Europe (London)", "eu-west-2"),
    ("EU (London)", "eu-west-2"),
    ("Europe (Paris)", "eu-west-3"),
    ("EU (Paris)", "eu-west-3"),
    ("Europe (Milan)", "eu-south-1"),
    ("EU (Milan)", "eu-south-1"),
    ("Europe (Spain)", "eu-south-2"),
    ("Europe (Stockholm)", "eu-north-1"),
    ("EU (Stockholm)", "eu-north-1"),
    ("Israel (Tel Aviv)", "il-central-1"),
    ("Middle East (Bahrain)", "me-south-1"),
    ("Middle East (UAE)", "me-central-1"),
    ("Mexico (Central)", "mx-central-1"),
    ("South America (Sao Paulo)", "sa-east-1"),
    ("South America (São Paulo)", "sa-east-1"),
    ("AWS GovCloud (US-West)", "us-gov-west-1"),
    ("AWS GovCloud (US-East)", "us-gov-east-1"),
    ("AWS GovCloud (US)", "us-gov-west-1"),
    ("China (Beijing)", "cn-north-1"),
    ("China (Ningxia)", "cn-northwest-1"),
];

/// The Region code for a display name (or a code, returned as is).
pub fn code(name: &str) -> Option<&'static str> {
    let name = name.trim();
    REGIONS
        .iter()
        .find(|(display, code)| display.eq_ignore_ascii_case(name) || *code == name)
        .map(|(_, code)| *code)
}

/// The Region field of an ARN: `arn:aws:cloudwatch:ap-northeast-1:123456789012:alarm:x`.
pub fn from_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// The account field of an ARN.
pub fn account_from_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_map_to_codes() {
        assert_eq!(code("Asia Pacific (Tokyo)"), Some("ap-northeast-1"));
        assert_eq!(code("EU (Ireland)"), Some("eu-west-1"));
        assert_eq!(code("Europe (Ireland)"), Some("eu-west-1"));
        assert_eq!(code("US East (N. Virginia)"), Some("us-east-1"));
        assert_eq!(code("us-west-2"), Some("us-west-2"));
        assert_eq!(code("Atlantis (North)"), None);
    }

    #[test]
    fn arns_give_region_and_account() {
        let arn = "arn:aws:cloudwatch:ap-northeast-1:123456789012:alarm:web cpu";
        assert_eq!(from_arn(arn), Some("ap-northeast-1"));
        assert_eq!(account_from_arn(arn), Some("123456789012"));
        assert_eq!(from_arn("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(from_arn("nonsense"), None);
    }
}
