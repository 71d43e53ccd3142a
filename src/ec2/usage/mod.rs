//! What can launch an image: the usage map `deregister` and `cleanup` decide on.
//!
//! Each kind of consumer is one paginated scan, all of them at once, whatever the number of
//! images (instances are filtered by image, 200 images a scan):
//!
//! | consumer                                   | read                                           |
//! | ------------------------------------------ | ---------------------------------------------- |
//! | instances (not terminated)                 | DescribeInstances                              |
//! | launch templates' `$Latest` and `$Default` | DescribeLaunchTemplateVersions (all templates) |
//! | Auto Scaling groups, launch configurations | DescribeAutoScalingGroups, DescribeLaunchConfigurations |
//! | EC2 Fleets, Spot Fleet and Spot Instance requests | DescribeFleets, DescribeSpotFleetRequests, DescribeSpotInstanceRequests |
//! | SSM parameters of type `aws:ec2:image`     | DescribeParameters, then GetParameters (10 a call) |
//! | what EC2 itself knows (Image Builder too)  | DescribeImageReferences (10 images a call), where offered |
//!
//! Then the launch template versions the groups and fleets pin by number (one
//! DescribeLaunchTemplateVersions per template), and the SSM parameters templates resolve
//! their image through (`resolve:ssm:NAME`, GetParameters). What can't be read stops the run
//! (an error naming the permission); a parameter that can't be resolved is "unchecked", which
//! keeps every candidate.

mod fleets;
mod groups;
mod references;
mod reports;
mod ssm;
mod templates;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;

pub use reports::{ReportAnswer, ReportWait, Reports};
pub use templates::TemplatePin;
use templates::TemplateVersions;

use super::Ec2;
use crate::error::Error;
use crate::model::{ImageUser, UsageMap, UserKind};
use crate::types::{ImageId, SnapshotId};

/// DescribeInstances takes at most this many values in one filter.
const FILTER_VALUES: usize = 200;

/// A consumer that launches images through launch template versions it names, or names
/// images itself (an override, a launch specification).
#[derive(Debug, Clone)]
struct Consumer {
    user: ImageUser,
    pins: Vec<TemplatePin>,
    images: Vec<String>,
}

/// Where an image ID field points: an image, or an SSM parameter that names one.
enum ImageRef<'a> {
    Image(&'a str),
    Parameter(&'a str),
}

impl<'a> ImageRef<'a> {
    fn parse(field: &'a str) -> Option<ImageRef<'a>> {
        if let Some(parameter) = field.strip_prefix("resolve:ssm:") {
            Some(ImageRef::Parameter(parameter))
        } else if field.starts_with("ami-") {
            Some(ImageRef::Image(field))
        } else {
            None
        }
    }
}

/// The snapshots that launch template versions (those a consumer can launch: `$Latest`,
/// `$Default`, and versions groups and fleets pin) and launch configurations create volumes
/// from: deleting one breaks their next launch.
fn snapshot_users(
    templates: &templates::TemplateVersions,
    consumers: &[Consumer],
    configurations: Vec<(String, ImageUser)>,
) -> BTreeMap<SnapshotId, BTreeSet<ImageUser>> {
    let mut users: BTreeMap<SnapshotId, BTreeSet<ImageUser>> = BTreeMap::new();
    let mut add = |snapshot: &str, user: ImageUser| {
        users.entry(SnapshotId::from_ec2(snapshot)).or_default().insert(user);
    };
    for version in templates.latest_and_default() {
        for snapshot in &version.snapshots {
            add(snapshot, ImageUser::new(UserKind::LaunchTemplate, version.id()));
        }
    }
    for consumer in consumers {
        for pin in &consumer.pins {
            if let Some(version) = templates.resolve(pin) {
                for snapshot in &version.snapshots {
                    add(snapshot, consumer.user.clone().via(version.label()));
                }
            }
        }
    }
    for (snapshot, user) in configurations {
        add(&snapshot, user);
    }
    users
}

/// Image fields, each with who launches it: a template's $Latest and $Default launch for the
/// template itself, a pinned version for the consumer pinning it; an image field may name an
/// SSM parameter instead of an image.
fn image_fields<'a>(templates: &'a TemplateVersions, consumers: &'a [Consumer]) -> Vec<(&'a str, ImageUser)> {
    let mut named: Vec<(&str, ImageUser)> = templates
        .latest_and_default()
        .map(|version| {
            (
                version.image.as_str(),
                ImageUser::new(UserKind::LaunchTemplate, version.id()),
            )
        })
        .collect();
    for consumer in consumers {
        for image in &consumer.images {
            named.push((image.as_str(), consumer.user.clone()));
        }
        for pin in &consumer.pins {
            if let Some(version) = templates.resolve(pin) {
                named.push((version.image.as_str(), consumer.user.clone().via(version.label())));
            }
        }
    }
    named
}

/// Who launches through what, for telling who follows a change of a launch template or an SSM
/// parameter: every image field a launcher reads (the templates' `$Latest` and `$Default`, the
/// versions groups and fleets pin, overrides) with who reads it, and every launch template
/// version a group or fleet names.
#[derive(Debug, Clone, Default)]
pub struct LaunchPaths {
    pub fields: Vec<(String, ImageUser)>,
    pub pins: Vec<(TemplatePin, ImageUser)>,
}

impl Ec2 {
    /// The launch paths of this account and region: the usage map's template, group and fleet
    /// scans, without the instances and parameters.
    pub async fn launch_paths(&self) -> Result<LaunchPaths, Error> {
        let (templates, consumers) =
            futures::try_join!(self.latest_and_default_template_versions(), self.template_consumers())?;
        let pinned = templates.missing(consumers.iter().flat_map(|c| &c.pins));
        let templates = templates.with(self.template_versions(&pinned).await?);
        let fields = image_fields(&templates, &consumers)
            .into_iter()
            .map(|(field, user)| (field.to_owned(), user))
            .collect();
        let pins = consumers
            .iter()
            .flat_map(|c| c.pins.iter().map(|pin| (pin.clone(), c.user.clone())))
            .collect();
        Ok(LaunchPaths { fields, pins })
    }
}

impl Ec2 {
    /// What can launch each of these images, what creates volumes from snapshots (with
    /// `snapshots`: the candidates' or orphans' snapshots may be deleted), and what could not
    /// be checked.
    pub async fn usage_map(&self, image_ids: &[ImageId], snapshots: bool) -> Result<UsageMap, Error> {
        if image_ids.is_empty() && !snapshots {
            return Ok(UsageMap::default());
        }
        let (instances, configurations, templates, consumers, parameters, references) = futures::try_join!(
            self.instances_using(image_ids),
            self.launch_configurations_using(),
            self.latest_and_default_template_versions(),
            self.template_consumers(),
            self.image_parameters(),
            self.image_references(image_ids),
        )?;
        let (references, not_offered) = references;

        // Template versions pinned by number that $Latest / $Default didn't already bring.
        let pinned = templates.missing(consumers.iter().flat_map(|c| &c.pins));
        let templates = templates.with(self.template_versions(&pinned).await?);

        let snapshot_users = snapshot_users(&templates, &consumers, configurations.snapshots);
        let mut found: Vec<(String, ImageUser)> = instances
            .into_iter()
            .chain(configurations.images)
            .chain(references)
            .collect();
        let mut unchecked = Vec::new();
        for (name, image) in &parameters {
            match image {
                Ok(image) => found.push((image.clone(), ImageUser::new(UserKind::SsmParameter, name))),
                Err(why) => unchecked.push(format!("SSM parameter {name} (an image ID parameter): {why}")),
            }
        }
        let named = image_fields(&templates, &consumers);
        let mut parameter_users: Vec<(&str, ImageUser)> = Vec::new();
        for (image, user) in named {
            match ImageRef::parse(image) {
                Some(ImageRef::Image(id)) => found.push((id.to_owned(), user)),
                Some(ImageRef::Parameter(name)) => parameter_users.push((name, user)),
                None => {}
            }
        }
        // Parameters the scan above read already are not read again.
        let unread: BTreeSet<&str> = parameter_users
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !parameters.contains_key(*name))
            .collect();
        let resolved = self.resolve_parameters(&unread).await?;
        for (name, user) in parameter_users {
            match resolved.get(name).or_else(|| parameters.get(name)) {
                Some(Ok(image)) => found.push((image.clone(), user.via(format!("SSM parameter {name}")))),
                Some(Err(why)) => unchecked.push(format!("SSM parameter {name}, which {user} names: {why}")),
                None => unchecked.push(format!("SSM parameter {name}, which {user} names: no answer for it")),
            }
        }

        let wanted: BTreeSet<&str> = image_ids.iter().map(ImageId::as_str).collect();
        let mut users: BTreeMap<ImageId, BTreeSet<ImageUser>> = BTreeMap::new();
        for (image, user) in found {
            if wanted.contains(image.as_str()) {
                users.entry(ImageId::from_ec2(image)).or_default().insert(user);
            }
        }
        unchecked.sort();
        unchecked.dedup();
        Ok(UsageMap {
            users,
            snapshot_users,
            unchecked,
            not_offered,
        })
    }

    /// Non-terminated instances running from these images.
    async fn instances_using(&self, image_ids: &[ImageId]) -> Result<Vec<(String, ImageUser)>, Error> {
        // One paginated scan per 200 images, all at once.
        let scans = image_ids
            .chunks(FILTER_VALUES)
            .map(<[ImageId]>::to_vec)
            .map(|chunk| async move { self.instances_using_chunk(&chunk).await });
        let found = futures::future::try_join_all(scans).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// One paginated scan, paced as the account's DescribeInstances stream.
    async fn instances_using_chunk(&self, image_ids: &[ImageId]) -> Result<Vec<(String, ImageUser)>, Error> {
        let not_terminated = super::instances::NOT_TERMINATED.map(str::to_owned);
        let stream = self.streams.of("DescribeInstances");
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .streams
                .send(&stream, |config| {
                    let request = self
                        .ec2()
                        .describe_instances()
                        .filters(
                            Filter::builder()
                                .name("image-id")
                                .set_values(Some(image_ids.iter().map(ToString::to_string).collect()))
                                .build(),
                        )
                        .filters(
                            Filter::builder()
                                .name("instance-state-name")
                                .set_values(Some(not_terminated.to_vec()))
                                .build(),
                        )
                        .max_results(1000)
                        .set_next_token(token.clone());
                    async move {
                        request
                            .customize()
                            .config_override(config)
                            .send()
                            .await
                            .map_err(|err| self.error("DescribeInstances", &err))
                    }
                })
                .await?;
            for instance in page
                .reservations()
                .iter()
                .flat_map(aws_sdk_ec2::types::Reservation::instances)
            {
                if let (Some(image), Some(id)) = (instance.image_id(), instance.instance_id()) {
                    found.push((image.to_owned(), ImageUser::new(UserKind::Instance, id)));
                }
            }
            match self.page_after("DescribeInstances", token.as_deref(), page.next_token())? {
                Some(next) => token = Some(next),
                None => return Ok(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! moto lacks DescribeImageReferences and never pages; a template version that is gone
    //! and an endpoint's refusals are shaped here from the API reference.

    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::describe_launch_configurations::DescribeLaunchConfigurationsOutput;
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::describe_fleets::DescribeFleetsOutput;
    use aws_sdk_ec2::operation::describe_image_references::DescribeImageReferencesOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::operation::describe_launch_template_versions::{
        DescribeLaunchTemplateVersionsError, DescribeLaunchTemplateVersionsOutput,
    };
    use aws_sdk_ec2::operation::describe_spot_fleet_requests::DescribeSpotFleetRequestsOutput;
    use aws_sdk_ec2::operation::describe_spot_instance_requests::DescribeSpotInstanceRequestsOutput;
    use aws_sdk_ec2::types as sdk;
    use aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock};
    use aws_smithy_runtime_api::http::{Response, StatusCode};

    use crate::ec2::mock::{aws_error, mock_ec2};
    use crate::types::ImageId;

    /// Every scan answers with nothing.
    fn quiet_scans() -> Vec<Rule> {
        vec![
            mock!(Client::describe_instances).then_output(|| DescribeInstancesOutput::builder().build()),
            mock!(aws_sdk_autoscaling::Client::describe_launch_configurations)
                .then_output(|| DescribeLaunchConfigurationsOutput::builder().build()),
            mock!(Client::describe_fleets).then_output(|| DescribeFleetsOutput::builder().build()),
            mock!(Client::describe_spot_fleet_requests)
                .then_output(|| DescribeSpotFleetRequestsOutput::builder().build()),
            mock!(Client::describe_spot_instance_requests)
                .then_output(|| DescribeSpotInstanceRequestsOutput::builder().build()),
            mock!(aws_sdk_ssm::Client::describe_parameters).then_output(|| DescribeParametersOutput::builder().build()),
        ]
    }

    fn version(number: i64, default: bool, image: &str) -> sdk::LaunchTemplateVersion {
        sdk::LaunchTemplateVersion::builder()
            .launch_template_id("lt-0123456789abcdef0")
            .launch_template_name("web")
            .version_number(number)
            .default_version(default)
            .launch_template_data(sdk::ResponseLaunchTemplateData::builder().image_id(image).build())
            .build()
    }

    fn ids(ids: &[&str]) -> Vec<ImageId> {
        ids.iter().map(|i| i.parse().unwrap()).collect()
    }

    /// An Auto Scaling group on template `web` version 1, with an override on version 2.
    fn group_pinning_versions_one_and_two() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(|| {
            let pinned = |version: &str| {
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name("web")
                    .version(version)
                    .build()
            };
            let overrides = aws_sdk_autoscaling::types::LaunchTemplateOverrides::builder()
                .launch_template_specification(pinned("2"))
                .build();
            DescribeAutoScalingGroupsOutput::builder()
                .auto_scaling_groups(
                    aws_sdk_autoscaling::types::AutoScalingGroup::builder()
                        .auto_scaling_group_name("web-asg")
                        .launch_template(pinned("1"))
                        .mixed_instances_policy(
                            aws_sdk_autoscaling::types::MixedInstancesPolicy::builder()
                                .launch_template(
                                    aws_sdk_autoscaling::types::LaunchTemplate::builder()
                                        .overrides(overrides)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    /// DescribeImageReferences: an Image Builder recipe names ami-00000009.
    fn an_image_builder_recipe_using_ami_9() -> aws_smithy_mocks::Rule {
        mock!(Client::describe_image_references).then_output(|| {
            DescribeImageReferencesOutput::builder()
                .image_references(
                    sdk::ImageReference::builder()
                        .image_id("ami-00000009")
                        .resource_type(sdk::ImageReferenceResourceType::ImageBuilderImageRecipe)
                        .arn("arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/web/1.0.0")
                        .build(),
                )
                .build()
        })
    }

    #[tokio::test]
    async fn references_ec2_knows_of_count_and_a_pinned_version_gone_launches_nothing() {
        let latest = mock!(Client::describe_launch_template_versions)
            .match_requests(|req| req.launch_template_id().is_none())
            .then_output(|| {
                DescribeLaunchTemplateVersionsOutput::builder()
                    .launch_template_versions(version(3, true, "ami-00000003"))
                    .build()
            });
        // EC2 refuses a read naming a version that is gone: then one read per version.
        let both = mock!(Client::describe_launch_template_versions)
            .match_requests(|req| req.versions() == ["1", "2"])
            .then_error(|| {
                DescribeLaunchTemplateVersionsError::generic(aws_error(
                    "InvalidLaunchTemplateId.VersionNotFound",
                    "Could not find launch template version 2",
                ))
            });
        let first = mock!(Client::describe_launch_template_versions)
            .match_requests(|req| req.versions() == ["1"])
            .then_output(|| {
                DescribeLaunchTemplateVersionsOutput::builder()
                    .launch_template_versions(version(1, false, "ami-00000001"))
                    .build()
            });
        let second = mock!(Client::describe_launch_template_versions)
            .match_requests(|req| req.versions() == ["2"])
            .then_error(|| {
                DescribeLaunchTemplateVersionsError::generic(aws_error(
                    "InvalidLaunchTemplateId.VersionNotFound",
                    "Could not find launch template version 2",
                ))
            });
        let group = group_pinning_versions_one_and_two();
        let references = an_image_builder_recipe_using_ami_9();
        let mut rules = quiet_scans();
        rules.extend([latest, both, first, second, group, references]);
        let ec2 = mock_ec2(RuleMode::MatchAny, &rules.iter().collect::<Vec<_>>());

        let usage = ec2
            .usage_map(
                &ids(&["ami-00000001", "ami-00000002", "ami-00000003", "ami-00000009"]),
                true,
            )
            .await
            .unwrap();

        let users = |image: &str| -> Vec<String> {
            usage
                .users
                .get(image)
                .map(|u| u.iter().map(ToString::to_string).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            users("ami-00000001"),
            ["Auto Scaling group web-asg through launch template web (lt-0123456789abcdef0) version 1"]
        );
        assert_eq!(users("ami-00000002"), Vec::<String>::new(), "version 2 is gone");
        assert_eq!(
            users("ami-00000003"),
            ["launch template web (lt-0123456789abcdef0) version 3"]
        );
        assert_eq!(
            users("ami-00000009"),
            ["resource arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/web/1.0.0"]
        );
        assert!(usage.unchecked.is_empty() && usage.not_offered.is_empty(), "{usage:?}");
    }

    #[tokio::test]
    async fn an_endpoint_without_image_references_is_asked_once_and_said_so() {
        let latest = mock!(Client::describe_launch_template_versions)
            .then_output(|| DescribeLaunchTemplateVersionsOutput::builder().build());
        let groups = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
            .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
        let lacking = mock!(Client::describe_image_references).then_http_response(|| {
            Response::new(
                StatusCode::try_from(500).unwrap(),
                aws_smithy_types::body::SdkBody::from("<!doctype html><title>500</title>"),
            )
        });
        let mut rules = quiet_scans();
        rules.extend([latest, groups]);
        let lacking_calls = {
            rules.push(lacking);
            rules.len() - 1
        };
        let ec2 = mock_ec2(RuleMode::MatchAny, &rules.iter().collect::<Vec<_>>());

        let usage = ec2.usage_map(&ids(&["ami-00000001"; 25]), false).await.unwrap();

        assert!(usage.users.is_empty());
        assert_eq!(rules[lacking_calls].num_calls(), 1, "one try, not one per ten images");
        assert!(usage.not_offered[0].starts_with("DescribeImageReferences: the endpoint answered with a server error"));
    }

    #[tokio::test]
    async fn instances_are_read_to_the_last_page() {
        let instance = |id: &str, image: &str| {
            sdk::Reservation::builder()
                .instances(sdk::Instance::builder().instance_id(id).image_id(image).build())
                .build()
        };
        let first = mock!(Client::describe_instances)
            .match_requests(|req| req.next_token().is_none() && req.max_results() == Some(1000))
            .then_output(move || {
                DescribeInstancesOutput::builder()
                    .reservations(instance("i-00000001", "ami-00000001"))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::describe_instances)
            .match_requests(|req| req.next_token() == Some("page-2"))
            .then_output(move || {
                DescribeInstancesOutput::builder()
                    .reservations(instance("i-00000002", "ami-00000002"))
                    .build()
            });
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&first, &second]);

        let found = ec2
            .instances_using(&ids(&["ami-00000001", "ami-00000002"]))
            .await
            .unwrap();

        let instances: Vec<&str> = found.iter().map(|(_, user)| user.id.as_str()).collect();
        assert_eq!(instances, ["i-00000001", "i-00000002"]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }
}
