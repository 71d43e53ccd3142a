//! Reading images: DescribeImages (paginated) and their launch permissions.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{self as sdk, Filter};

use super::Ec2;
use super::pages::PageError;
use crate::error::Error;
use crate::model::{Backing, BlockDevice, Image, ImageState};
use crate::types::{AccountId, ImageId, NameGlob, Owner, Region, SnapshotId, Tag};
use futures::StreamExt as _;

/// DescribeImages' largest page; fewer round trips for big accounts.
const PAGE_SIZE: i32 = 1000;

/// What DeregisterImage did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deregistered {
    Now,
    AlreadyGone,
}

/// Which images to read. Empty fields don't filter.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    pub image_ids: Vec<ImageId>,
    pub owners: Vec<Owner>,
    pub name: Option<NameGlob>,
    /// Only images with exactly this name (names can't hold EC2's wildcards `*` and `?`).
    pub exact_name: Option<String>,
    pub tags: Vec<Tag>,
    pub backing: Option<Backing>,
    pub include_deprecated: bool,
    pub include_disabled: bool,
}

impl ImageQuery {
    /// The server-side filters. Name and backing are checked again locally, because EC2's name
    /// filter knows only `*` and `?`, and some endpoints report a root device type that is
    /// neither `ebs` nor `instance-store`.
    fn filters(&self) -> Vec<Filter> {
        let mut filters = Vec::new();
        if let Some(pattern) = self.name.as_ref().and_then(NameGlob::as_api_filter) {
            filters.push(Filter::builder().name("name").values(pattern).build());
        }
        if let Some(name) = &self.exact_name {
            filters.push(Filter::builder().name("name").values(name).build());
        }
        for tag in &self.tags {
            filters.push(
                Filter::builder()
                    .name(format!("tag:{}", tag.key))
                    .values(&tag.value)
                    .build(),
            );
        }
        if self.backing == Some(Backing::InstanceStore) {
            filters.push(
                Filter::builder()
                    .name("root-device-type")
                    .values("instance-store")
                    .build(),
            );
        }
        filters
    }

    fn matches(&self, image: &Image) -> bool {
        let exact_ok = self
            .exact_name
            .as_ref()
            .is_none_or(|wanted| image.name.as_ref() == Some(wanted));
        let backing_ok = self.backing.is_none_or(|b| image.backing == b);
        image.name_matches(self.name.as_ref()) && exact_ok && self.tags.iter().all(|t| image.has_tag(t)) && backing_ok
    }
}

impl Ec2 {
    /// The images the query selects, newest first, following every page.
    ///
    /// Named images that don't exist are an error naming them and the region.
    pub async fn describe_images(&self, query: &ImageQuery) -> Result<Vec<Image>, Error> {
        // With IDs named, filter locally only, so that an image that exists but doesn't match
        // is told apart from one that doesn't exist.
        let filters = query.image_ids.is_empty().then(|| query.filters());
        let mut request = self
            .ec2()
            .describe_images()
            .set_filters(filters)
            .include_deprecated(query.include_deprecated)
            .include_disabled(query.include_disabled);
        for owner in &query.owners {
            request = request.owners(owner.as_api_value());
        }
        for id in &query.image_ids {
            request = request.image_ids(id.as_str());
        }
        // EC2 refuses MaxResults together with ImageIds.
        if query.image_ids.is_empty() {
            request = request.max_results(PAGE_SIZE);
        }
        let mut pages = std::pin::pin!(super::pages::pages(
            self.gate(crate::ec2::budget::Turn::Opens),
            |token| request.clone().set_next_token(token).send(),
            aws_sdk_ec2::operation::describe_images::DescribeImagesOutput::next_token,
        ));

        let mut images = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| match &err {
                PageError::Refused(refused)
                    if matches!(
                        refused.as_service_error().map(|e| e.meta().code()),
                        Some(Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable"))
                    ) =>
                {
                    let named = ImageId::find_in(
                        refused
                            .as_service_error()
                            .and_then(|e| e.meta().message())
                            .unwrap_or_default(),
                    );
                    self.images_not_found(if named.is_empty() { &query.image_ids } else { &named })
                }
                _ => self.page_error("DescribeImages", &err),
            })?;
            tracing::debug!(
                images = page.images().len(),
                more = page.next_token().is_some(),
                "DescribeImages page"
            );
            let sdk_images = page.images.unwrap_or_default();
            images.reserve(sdk_images.len());
            for sdk_image in sdk_images {
                let image = self.image_of(sdk_image);
                seen.insert(image.image_id.clone());
                if query.matches(&image) {
                    images.push(image);
                }
            }
        }

        let missing: Vec<ImageId> = query
            .image_ids
            .iter()
            .filter(|id| !seen.contains(id.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(self.images_not_found(&missing));
        }

        images.sort_by(Image::newest_first);
        Ok(images)
    }

    /// One image, or `None` when EC2 doesn't know it (yet: a new image can take a moment to
    /// show up).
    pub async fn image(&self, id: &ImageId) -> Result<Option<Image>, Error> {
        let query = ImageQuery {
            image_ids: vec![id.clone()],
            include_deprecated: true,
            include_disabled: true,
            ..ImageQuery::default()
        };
        match self.describe_images(&query).await {
            Ok(images) => Ok(images.into_iter().next()),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Those of these images that exist, in any state (DescribeImages with an `image-id`
    /// filter: naming the IDs would fail the whole request for one that doesn't exist).
    pub async fn images_if_any(&self, ids: &[ImageId]) -> Result<Vec<Image>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = self
            .ec2()
            .describe_images()
            .filters(
                Filter::builder()
                    .name("image-id")
                    .set_values(Some(ids.iter().map(|i| i.as_str().to_owned()).collect()))
                    .build(),
            )
            .include_deprecated(true)
            .include_disabled(true);
        let mut pages = std::pin::pin!(self.pages(
            |token| request.clone().set_next_token(token).send(),
            aws_sdk_ec2::operation::describe_images::DescribeImagesOutput::next_token,
        ));
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("DescribeImages", &err))?;
            images.extend(page.images.unwrap_or_default().into_iter().map(|i| self.image_of(i)));
        }
        Ok(images)
    }

    /// The account's own images with exactly this name (EC2 allows one; other endpoints may not check).
    pub async fn own_images_named(&self, name: &str) -> Result<Vec<Image>, Error> {
        let query = ImageQuery {
            owners: vec![Owner::Me],
            exact_name: Some(name.to_owned()),
            include_deprecated: true,
            include_disabled: true,
            ..ImageQuery::default()
        };
        self.describe_images(&query).await
    }

    /// Every image the account owns in the region, disabled and deprecated ones included:
    /// the map of which snapshots are still referenced.
    pub async fn all_own_images(&self) -> Result<Vec<Image>, Error> {
        let query = ImageQuery {
            owners: vec![Owner::Me],
            include_deprecated: true,
            include_disabled: true,
            ..ImageQuery::default()
        };
        self.describe_images(&query).await
    }

    /// Deregisters an image. One already gone is not an error: a re-run finishes the job.
    ///
    /// EC2 answers `InvalidAMIID.Unavailable` both for an image deregistered already and for
    /// one that exists in a state that can't be changed; only the first is "already gone", so
    /// the image is looked up before the answer is read either way.
    pub async fn deregister_image(&self, id: &ImageId) -> Result<Deregistered, Error> {
        let stream = self.streams.of("DeregisterImage");
        let unavailable = self
            .streams
            .send(&stream, |config| async move {
                let result = self
                    .ec2()
                    .deregister_image()
                    .image_id(id.as_str())
                    .customize()
                    .config_override(config)
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(None),
                    Err(err) if err.code() == Some("InvalidAMIID.NotFound") => Ok(Some(None)),
                    Err(err) if err.code() == Some("InvalidAMIID.Unavailable") => {
                        Ok(Some(Some(err.message().unwrap_or("unavailable").to_owned())))
                    }
                    Err(err) => Err(self.error("DeregisterImage", &err)),
                }
            })
            .await?;
        match unavailable {
            None => Ok(Deregistered::Now),
            Some(None) => Ok(Deregistered::AlreadyGone),
            Some(Some(message)) => match self.images_if_any(std::slice::from_ref(id)).await?.first() {
                None => Ok(Deregistered::AlreadyGone),
                Some(image) => Err(Error::Aws {
                    action: "DeregisterImage",
                    region: self.region.to_string(),
                    code: "InvalidAMIID.Unavailable".to_owned(),
                    message: format!(
                        "{message} (the image exists, {}: not deregistered)",
                        image
                            .state
                            .as_ref()
                            .map_or("in a state EC2 didn't name", ImageState::as_str)
                    ),
                }),
            },
        }
    }

    /// amictl's image from the SDK's, labelled with this client's region and account.
    fn image_of(&self, image: sdk::Image) -> Image {
        image_from_sdk(
            image,
            &self.region,
            self.account_id.as_ref(),
            self.account_name.as_deref(),
        )
    }

    fn images_not_found(&self, ids: &[ImageId]) -> Error {
        let list: Vec<&str> = ids.iter().map(ImageId::as_str).collect();
        Error::NotFound {
            what: format!("image {}", list.join(", ")),
            region: self.region.to_string(),
        }
    }
}

/// amictl's image from the SDK's. Unknown enum values keep the endpoint's own string, never
/// the SDK's debug form.
/// amictl's image from the SDK's, taking its strings rather than copying them (a big
/// account's page holds thousands). Unknown enum values keep the endpoint's own string,
/// never the SDK's debug form.
fn image_from_sdk(
    image: sdk::Image,
    region: &Region,
    account_id: Option<&AccountId>,
    account_name: Option<&str>,
) -> Image {
    let block_devices: Vec<BlockDevice> = image
        .block_device_mappings
        .unwrap_or_default()
        .into_iter()
        .map(block_device_from_sdk)
        .collect();
    let backing = Image::backing_from(
        image.root_device_type.as_ref().map(sdk::DeviceType::as_str),
        image.root_device_name.as_deref(),
        &block_devices,
    );
    Image {
        region: region.clone(),
        account_id: account_id.cloned(),
        account_name: account_name.map(str::to_owned),
        image_id: ImageId::from_ec2(image.image_id.unwrap_or_default()),
        name: image.name,
        description: image.description,
        state: image.state.map(|s| ImageState::parse(s.as_str())),
        owner_id: image.owner_id,
        creation_date: image.creation_date.and_then(|d| d.parse().ok()),
        backing,
        root_device_name: image.root_device_name,
        architecture: image.architecture.map(|a| a.as_str().to_owned()),
        public: image.public,
        size_gib: block_devices.iter().filter_map(|d| d.volume_size_gib).sum(),
        snapshot_ids: block_devices.iter().filter_map(|d| d.snapshot_id.clone()).collect(),
        block_devices,
        tags: image
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
            .collect::<BTreeMap<_, _>>(),
        deprecation_time: image.deprecation_time.and_then(|d| d.parse().ok()),
        source_instance_id: image.source_instance_id,
        source_image_id: image.source_image_id,
        source_image_region: image.source_image_region,
        state_reason: image.state_reason.and_then(|r| r.message),
        deregistration_protection: image.deregistration_protection,
        last_launched_time: image.last_launched_time.and_then(|d| d.parse().ok()),
    }
}

fn block_device_from_sdk(mapping: sdk::BlockDeviceMapping) -> BlockDevice {
    let ebs = mapping.ebs;
    BlockDevice {
        device_name: mapping.device_name,
        snapshot_id: ebs
            .as_ref()
            .and_then(|e| e.snapshot_id.clone())
            .map(SnapshotId::from_ec2),
        volume_size_gib: ebs.as_ref().and_then(|e| e.volume_size).map(i64::from),
        volume_type: ebs
            .as_ref()
            .and_then(|e| e.volume_type.as_ref())
            .map(|t| t.as_str().to_owned()),
        encrypted: ebs.as_ref().and_then(|e| e.encrypted),
        kms_key_id: ebs.as_ref().and_then(|e| e.kms_key_id.clone()),
        delete_on_termination: ebs.as_ref().and_then(|e| e.delete_on_termination),
        virtual_name: mapping.virtual_name,
    }
}

#[cfg(test)]
mod tests {
    //! moto ignores MaxResults and NextToken (it answers everything in one page) and never
    //! answers some errors, so paging and error mapping are tested here with aws-smithy-mocks.

    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
    use aws_sdk_ec2::types::{BlockDeviceMapping, DeviceType, EbsBlockDevice};
    use aws_smithy_mocks::{RuleMode, mock};

    use super::*;
    use crate::ec2::mock::{aws_error, mock_ec2};

    fn sdk_image(id: &str, created: &str) -> sdk::Image {
        sdk::Image::builder()
            .image_id(id)
            .name(format!("name-{id}"))
            .creation_date(created)
            .root_device_type(DeviceType::from("standard"))
            .root_device_name("/dev/xvda")
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(
                        EbsBlockDevice::builder()
                            .snapshot_id(format!("snap-{id}"))
                            .volume_size(15)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn follows_next_token_to_the_last_page_and_sorts_newest_first() {
        let first = mock!(Client::describe_images)
            .match_requests(|req| req.next_token().is_none() && req.max_results() == Some(1000))
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(sdk_image("ami-11111111", "2024-01-01T00:00:00.000Z"))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::describe_images)
            .match_requests(|req| req.next_token() == Some("page-2"))
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(sdk_image("ami-22222222", "2025-01-01T00:00:00.000Z"))
                    .build()
            });
        let ec2 = mock_ec2(RuleMode::Sequential, &[&first, &second]);

        let images = ec2.describe_images(&ImageQuery::default()).await.unwrap();

        let ids: Vec<&str> = images.iter().map(|i| i.image_id.as_str()).collect();
        assert_eq!(ids, ["ami-22222222", "ami-11111111"]);
        assert_eq!(
            images[0].backing,
            Backing::Ebs,
            "a 'standard' root with an EBS mapping is ebs"
        );
        assert_eq!(images[0].snapshot_ids, [SnapshotId::from_ec2("snap-ami-22222222")]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn deprecated_and_disabled_images_are_asked_for_only_when_wanted() {
        // moto can't deprecate an image: what EC2 is asked is checked here instead.
        let asked = mock!(Client::describe_images)
            .match_requests(|req| req.include_deprecated() == Some(true) && req.include_disabled() == Some(true))
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(sdk_image("ami-11111111", "2024-01-01T00:00:00.000Z"))
                    .build()
            });
        let default = mock!(Client::describe_images)
            .match_requests(|req| req.include_deprecated() == Some(false) && req.include_disabled() == Some(false))
            .then_output(|| DescribeImagesOutput::builder().build());
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&asked, &default]);

        let everything = ImageQuery {
            include_deprecated: true,
            include_disabled: true,
            ..ImageQuery::default()
        };
        assert_eq!(ec2.describe_images(&everything).await.unwrap().len(), 1);
        assert!(ec2.describe_images(&ImageQuery::default()).await.unwrap().is_empty());
        assert_eq!((asked.num_calls(), default.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_missing_image_is_not_found_naming_it_and_the_region() {
        let rule = mock!(Client::describe_images).then_error(|| {
            DescribeImagesError::generic(aws_error(
                "InvalidAMIID.NotFound",
                "The image id '[ami-0123456789abcdef0]' does not exist",
            ))
        });
        let ec2 = mock_ec2(RuleMode::Sequential, &[&rule]);
        let query = ImageQuery {
            image_ids: vec![
                "ami-12345678".parse().unwrap(),
                "ami-0123456789abcdef0".parse().unwrap(),
            ],
            ..ImageQuery::default()
        };

        let err = ec2.describe_images(&query).await.unwrap_err();

        assert_eq!(
            err.to_string(),
            "image ami-0123456789abcdef0 not found in eu-west-1; check the ID, or --region if it lives elsewhere"
        );
    }

    #[tokio::test]
    async fn access_denied_and_expired_credentials_say_what_to_do() {
        let denied = mock!(Client::describe_images).then_error(|| {
            DescribeImagesError::generic(aws_error(
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            ))
        });
        let expired = mock!(Client::describe_images)
            .then_error(|| DescribeImagesError::generic(aws_error("RequestExpired", "Request has expired.")));
        let ec2 = mock_ec2(RuleMode::Sequential, &[&denied, &expired]);

        let denied = ec2.describe_images(&ImageQuery::default()).await.unwrap_err();
        let expired = ec2.describe_images(&ImageQuery::default()).await.unwrap_err();

        assert!(matches!(denied, Error::AccessDenied { .. }), "{denied:?}");
        assert!(denied.to_string().contains("ec2:DescribeImages permission"), "{denied}");
        assert!(matches!(expired, Error::Credentials(_)), "{expired:?}");
        assert!(expired.to_string().contains("expired"), "{expired}");
    }
}
