//! An `Ec2` whose answers come from aws-smithy-mocks rules, for what moto can't serve:
//! paging, throttling, errors it never returns, states it never reaches.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::ErrorMetadata;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};

use super::Ec2;

/// An `Ec2` in eu-west-1 that answers with `rules` (EC2, Auto Scaling and SSM rules alike).
pub fn mock_ec2(mode: RuleMode, rules: &[&Rule]) -> Ec2 {
    let interceptor = || {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(mode);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        interceptor
    };
    let credentials = Credentials::new("AKIDTEST", "secret", None, None, "test");
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(credentials.clone())
        .http_client(create_mock_http_client())
        .interceptor(interceptor())
        .build();
    let autoscaling = aws_sdk_autoscaling::Config::builder()
        .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
        .region(aws_sdk_autoscaling::config::Region::new("eu-west-1"))
        .credentials_provider(credentials.clone())
        .http_client(create_mock_http_client())
        .interceptor(interceptor())
        .build();
    let ssm = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
        .credentials_provider(credentials)
        .http_client(create_mock_http_client())
        .interceptor(interceptor())
        .build();
    Ec2::from_clients(
        Client::from_conf(ec2),
        aws_sdk_autoscaling::Client::from_conf(autoscaling),
        aws_sdk_ssm::Client::from_conf(ssm),
        "eu-west-1",
    )
}

/// The metadata of an EC2 error answer.
pub fn aws_error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}
