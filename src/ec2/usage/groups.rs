//! Auto Scaling: groups (through the launch template versions they and their
//! mixed-instances overrides name) and launch configurations.

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;

use super::super::Ec2;
use super::Consumer;
use super::templates::TemplatePin;
use crate::error::Error;
use crate::model::{ImageUser, UserKind};
use futures::StreamExt as _;

impl Ec2 {
    /// Every Auto Scaling group, with the template versions and images it launches.
    pub(super) async fn auto_scaling_groups(&self) -> Result<Vec<Consumer>, Error> {
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.autoscaling().describe_auto_scaling_groups())
                    .max_records(100)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput::next_token,
        ));
        let mut consumers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("autoscaling:DescribeAutoScalingGroups", &err))?;
            for group in page.auto_scaling_groups() {
                let mut consumer = Consumer {
                    user: ImageUser::new(
                        UserKind::AutoScalingGroup,
                        group.auto_scaling_group_name().unwrap_or_default(),
                    ),
                    pins: group.launch_template().map(pin).into_iter().collect(),
                    images: Vec::new(),
                };
                if let Some(mixed) = group.mixed_instances_policy().and_then(|m| m.launch_template()) {
                    consumer.pins.extend(mixed.launch_template_specification().map(pin));
                    for instance_type in mixed.overrides() {
                        consumer
                            .pins
                            .extend(instance_type.launch_template_specification().map(pin));
                        consumer.images.extend(instance_type.image_id().map(str::to_owned));
                    }
                }
                consumers.push(consumer);
            }
        }
        Ok(consumers)
    }

    /// The images Auto Scaling launch configurations name.
    /// Every launch configuration's image, and the snapshots its block device mappings create
    /// volumes from, each with the configuration as the user.
    pub(super) async fn launch_configurations_using(&self) -> Result<LaunchConfigurationUses, Error> {
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.autoscaling().describe_launch_configurations())
                    .max_records(100)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_autoscaling::operation::describe_launch_configurations::DescribeLaunchConfigurationsOutput::next_token,
        ));
        let mut found = LaunchConfigurationUses::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("autoscaling:DescribeLaunchConfigurations", &err))?;
            for configuration in page.launch_configurations() {
                let Some(name) = configuration.launch_configuration_name() else {
                    continue;
                };
                let user = ImageUser::new(UserKind::LaunchConfiguration, name);
                if let Some(image) = configuration.image_id() {
                    found.images.push((image.to_owned(), user.clone()));
                }
                for snapshot in configuration
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
                {
                    found.snapshots.push((snapshot.to_owned(), user.clone()));
                }
            }
        }
        Ok(found)
    }
}

/// What launch configurations name: images, and snapshots to create volumes from.
#[derive(Debug, Default)]
pub(super) struct LaunchConfigurationUses {
    pub images: Vec<(String, ImageUser)>,
    pub snapshots: Vec<(String, ImageUser)>,
}

fn pin(spec: &LaunchTemplateSpecification) -> TemplatePin {
    TemplatePin {
        id: spec.launch_template_id().map(str::to_owned),
        name: spec.launch_template_name().map(str::to_owned),
        version: spec.version().map(str::to_owned),
    }
}
