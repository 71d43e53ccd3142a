//! Copying images between regions: CopyImage (asked in the copy's own region), the copies made
//! before (found by their source tags), and the regions of the account.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::ResourceType;

use super::Ec2;
use super::create::tag_specification;
use crate::error::Error;
use crate::model::{Image, SOURCE_IMAGE_TAG, SOURCE_REGION_TAG};
use crate::types::{ImageId, Owner, Region, Tag};

/// What to copy, and how: CopyImage's parameters, sent to the target region's endpoint.
#[derive(Debug, Clone)]
pub struct CopySpec {
    pub source_image_id: ImageId,
    pub source_region: Region,
    pub name: String,
    pub description: Option<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// The copy's tags, the source tags among them: applied by CopyImage itself, so that a copy
    /// is never without the tags a re-run finds it by.
    pub image_tags: BTreeMap<String, String>,
    pub snapshot_tags: BTreeMap<String, String>,
}

/// A region as DescribeRegions (AllRegions) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub name: String,
    /// `opt-in-not-required`, `opted-in` or `not-opted-in`.
    pub opt_in_status: Option<String>,
}

impl RegionInfo {
    /// Whether the account can work there; a region EC2 lists without a status counts as enabled.
    pub fn is_enabled(&self) -> bool {
        self.opt_in_status.as_deref() != Some("not-opted-in")
    }
}

impl Ec2 {
    /// Starts copying the image into this client's region. The SDK sends an idempotency token
    /// (ClientToken) of its own with each call, so its retries never make a second copy.
    pub async fn copy_image(&self, spec: &CopySpec) -> Result<ImageId, Error> {
        let output = self
            .copy_image_request(spec)
            .send()
            .await
            .map_err(|err| self.error("CopyImage", &err))?;
        output
            .image_id()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| Error::Aws {
                action: "CopyImage",
                region: self.region.to_string(),
                code: "UnexpectedResponse".to_owned(),
                message: format!("the answer has no usable image ID ({:?})", output.image_id()),
            })
    }

    /// Asks CopyImage, with DryRun, whether the copy would be made.
    pub async fn copy_image_dry_run(&self, spec: &CopySpec) -> Result<(), Error> {
        match self.copy_image_request(spec).dry_run(true).send().await {
            Err(err) if err.code() == Some("DryRunOperation") => Ok(()),
            Err(err) => Err(self.error("CopyImage", &err)),
            Ok(output) => Err(Error::Failed(format!(
                "the endpoint ignored DryRun and copied the image: {} in {}; deregister it with `amictl deregister`",
                output.image_id().unwrap_or("(no ID)"),
                self.region
            ))),
        }
    }

    fn copy_image_request(
        &self,
        spec: &CopySpec,
    ) -> aws_sdk_ec2::operation::copy_image::builders::CopyImageFluentBuilder {
        let mut request = self
            .ec2()
            .copy_image()
            .source_image_id(spec.source_image_id.as_str())
            .source_region(spec.source_region.as_str())
            .name(&spec.name)
            .set_description(spec.description.clone());
        if spec.encrypted {
            request = request.encrypted(true).set_kms_key_id(spec.kms_key_id.clone());
        }
        if !spec.image_tags.is_empty() {
            request = request.tag_specifications(tag_specification(ResourceType::Image, &spec.image_tags));
        }
        if !spec.snapshot_tags.is_empty() {
            request = request.tag_specifications(tag_specification(ResourceType::Snapshot, &spec.snapshot_tags));
        }
        request
    }

    /// The account's images in this region that amictl copied from the source, any state.
    pub async fn copies_of(&self, source: &ImageId, source_region: &Region) -> Result<Vec<Image>, Error> {
        let query = super::ImageQuery {
            owners: vec![Owner::Me],
            tags: vec![
                Tag {
                    key: SOURCE_IMAGE_TAG.to_owned(),
                    value: source.to_string(),
                },
                Tag {
                    key: SOURCE_REGION_TAG.to_owned(),
                    value: source_region.to_string(),
                },
            ],
            include_deprecated: true,
            include_disabled: true,
            ..super::ImageQuery::default()
        };
        self.describe_images(&query).await
    }

    /// Every region of the partition, with whether the account has it enabled
    /// (DescribeRegions with AllRegions).
    pub async fn all_regions(&self) -> Result<Vec<RegionInfo>, Error> {
        let output = self
            .ec2()
            .describe_regions()
            .all_regions(true)
            .send()
            .await
            .map_err(|err| self.error("DescribeRegions", &err))?;
        let mut regions: Vec<RegionInfo> = output
            .regions()
            .iter()
            .filter_map(|r| {
                Some(RegionInfo {
                    name: r.region_name()?.to_owned(),
                    opt_in_status: r.opt_in_status().map(str::to_owned),
                })
            })
            .collect();
        regions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(regions)
    }
}
