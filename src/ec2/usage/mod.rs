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
mod ssm;
mod templates;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;

use templates::TemplatePin;

use super::Ec2;
use crate::error::Error;
use crate::model::{ImageUser, UsageMap, UserKind};

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

impl Ec2 {
    /// What can launch each of these images, and what could not be checked.
    pub async fn usage_map(&self, image_ids: &[String]) -> Result<UsageMap, Error> {
        if image_ids.is_empty() {
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

        let mut found: Vec<(String, ImageUser)> =
            instances.into_iter().chain(configurations).chain(references).collect();
        let mut unchecked = Vec::new();
        for (name, image) in &parameters {
            match image {
                Ok(image) => found.push((image.clone(), ImageUser::new(UserKind::SsmParameter, name))),
                Err(why) => unchecked.push(format!("SSM parameter {name} (an image ID parameter): {why}")),
            }
        }
        // Image fields, each with who launches it: a template's $Latest and $Default launch
        // for the template itself, a pinned version for the consumer pinning it; an image
        // field may name an SSM parameter instead of an image.
        let mut named: Vec<(&str, ImageUser)> = templates
            .latest_and_default()
            .map(|version| {
                (
                    version.image.as_str(),
                    ImageUser::new(UserKind::LaunchTemplate, version.id()),
                )
            })
            .collect();
        for consumer in &consumers {
            for image in &consumer.images {
                named.push((image.as_str(), consumer.user.clone()));
            }
            for pin in &consumer.pins {
                if let Some(version) = templates.resolve(pin) {
                    named.push((version.image.as_str(), consumer.user.clone().via(version.label())));
                }
            }
        }
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

        let wanted: BTreeSet<&str> = image_ids.iter().map(String::as_str).collect();
        let mut users: BTreeMap<String, BTreeSet<ImageUser>> = BTreeMap::new();
        for (image, user) in found {
            if wanted.contains(image.as_str()) {
                users.entry(image).or_default().insert(user);
            }
        }
        unchecked.sort();
        unchecked.dedup();
        Ok(UsageMap {
            users,
            unchecked,
            not_offered,
        })
    }

    /// Non-terminated instances running from these images.
    async fn instances_using(&self, image_ids: &[String]) -> Result<Vec<(String, ImageUser)>, Error> {
        // One paginated scan per 200 images, all at once.
        let scans = image_ids
            .chunks(FILTER_VALUES)
            .map(|chunk| self.instances_using_chunk(chunk));
        let found = futures::future::try_join_all(scans).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn instances_using_chunk(&self, image_ids: &[String]) -> Result<Vec<(String, ImageUser)>, Error> {
        let not_terminated = ["pending", "running", "shutting-down", "stopping", "stopped"].map(str::to_owned);
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("image-id")
                    .set_values(Some(image_ids.to_vec()))
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(not_terminated.to_vec()))
                    .build(),
            )
            .into_paginator()
            .page_size(1000)
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.error("DescribeInstances", &err))?;
            for instance in page
                .reservations()
                .iter()
                .flat_map(aws_sdk_ec2::types::Reservation::instances)
            {
                if let (Some(image), Some(id)) = (instance.image_id(), instance.instance_id()) {
                    found.push((image.to_owned(), ImageUser::new(UserKind::Instance, id)));
                }
            }
        }
        Ok(found)
    }
}
