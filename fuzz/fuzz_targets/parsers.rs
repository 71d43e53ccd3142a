//! Every parser of what users type: none may panic, and what parses must mean what it says.
#![no_main]

use amictl::pipeline::plan;
use amictl::types::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(id) = input.parse::<ImageId>() {
        assert_eq!(id.to_string(), input);
    }
    if let Ok(id) = input.parse::<InstanceId>() {
        assert_eq!(id.to_string(), input);
    }
    let _ = ImageId::find_in(input);
    let _ = input.parse::<AccountId>();
    let _ = input.parse::<OrgArn>();
    let _ = input.parse::<OuArn>();
    let _ = input.parse::<Owner>();
    if let Ok(tag) = input.parse::<Tag>() {
        assert_eq!(format!("{}={}", tag.key, tag.value), input);
    }
    if let Ok(glob) = input.parse::<NameGlob>() {
        let _ = glob.is_match(input);
        let _ = glob.as_api_filter();
    }
    let _ = input.parse::<Region>();
    if let Ok(template) = input.parse::<LaunchTemplateRef>() {
        assert_eq!(template.to_string(), input);
    }
    let _ = input.parse::<EndpointUrl>();
    if let Ok(price) = input.parse::<Price>() {
        assert!(price.0.is_finite() && price.0 >= 0.0);
    }
    if let Ok(template) = input.parse::<NameTemplate>()
        && let Ok(name) = template.expand(|_| Ok("web-1".to_owned()))
    {
        assert!(check_image_name(&name).is_ok(), "{name:?}");
    }
    let _ = input.parse::<Description>();
    if let Ok(duration) = input.parse::<HumanDuration>() {
        assert!(!duration.0.is_zero());
    }
    let _ = input.parse::<plan::GroupBy>();
    let _ = plan::name_family(input);
});
