//! What uses an image: instances, launch templates and launch configurations. Each is one
//! paginated scan, whatever the number of images.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;

use super::Ec2;
use crate::error::Error;
use crate::model::{ImageUser, ImageUsers};

/// DescribeInstances takes at most this many values in one filter.
const FILTER_VALUES: usize = 200;

impl Ec2 {
    /// What uses each of these images. Images nothing uses are absent.
    pub async fn image_users(&self, image_ids: &[String]) -> Result<ImageUsers, Error> {
        if image_ids.is_empty() {
            return Ok(ImageUsers::new());
        }
        let (instances, templates, configurations) = futures::try_join!(
            self.instances_using(image_ids),
            self.launch_templates_using(),
            self.launch_configurations_using(),
        )?;
        let wanted: BTreeSet<&str> = image_ids.iter().map(String::as_str).collect();
        let mut users = ImageUsers::new();
        for (image, user) in instances.into_iter().chain(templates).chain(configurations) {
            if wanted.contains(image.as_str()) {
                users.entry(image).or_default().insert(user);
            }
        }
        Ok(users)
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
                    found.push((image.to_owned(), ImageUser::Instance(id.to_owned())));
                }
            }
        }
        Ok(found)
    }

    /// The images the default and latest versions of every launch template name.
    async fn launch_templates_using(&self) -> Result<Vec<(String, ImageUser)>, Error> {
        // No template ID and the two version aliases: EC2's way of asking for all templates.
        let mut pages = self
            .client
            .describe_launch_template_versions()
            .versions("$Latest")
            .versions("$Default")
            .into_paginator()
            .page_size(200)
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.error("DescribeLaunchTemplateVersions", &err))?;
            for version in page.launch_template_versions() {
                let image = version.launch_template_data().and_then(|d| d.image_id());
                // `resolve:ssm:…` parameters are not image IDs.
                if let Some(image) = image.filter(|i| i.starts_with("ami-")) {
                    found.push((
                        image.to_owned(),
                        ImageUser::LaunchTemplate {
                            id: version.launch_template_id().unwrap_or_default().to_owned(),
                            name: version.launch_template_name().unwrap_or_default().to_owned(),
                            version: version.version_number().unwrap_or_default(),
                        },
                    ));
                }
            }
        }
        Ok(found)
    }

    /// The images Auto Scaling launch configurations name.
    async fn launch_configurations_using(&self) -> Result<Vec<(String, ImageUser)>, Error> {
        let mut pages = self
            .autoscaling
            .describe_launch_configurations()
            .into_paginator()
            .page_size(100)
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.error("autoscaling:DescribeLaunchConfigurations", &err))?;
            for configuration in page.launch_configurations() {
                if let (Some(image), Some(name)) = (configuration.image_id(), configuration.launch_configuration_name())
                {
                    found.push((image.to_owned(), ImageUser::LaunchConfiguration(name.to_owned())));
                }
            }
        }
        Ok(found)
    }
}
