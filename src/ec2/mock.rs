//! An `Ec2` whose answers come from aws-smithy-mocks rules, for what moto can't serve:
//! paging, throttling, errors it never returns, states it never reaches.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::ErrorMetadata;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};

use super::Ec2;

/// An `Ec2` in eu-west-1 that answers with `rules`.
pub fn mock_ec2(mode: RuleMode, rules: &[&Rule]) -> Ec2 {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(mode);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    Ec2::from_client(Client::from_conf(config), "eu-west-1")
}

/// The metadata of an EC2 error answer.
pub fn aws_error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}
