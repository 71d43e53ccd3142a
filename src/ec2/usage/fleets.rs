//! EC2 Fleets, Spot Fleet requests and Spot Instance requests: each can launch again, from
//! the template versions and images it names, long after its first instances are gone.

use aws_sdk_ec2::types::{BatchState, FleetLaunchTemplateSpecification, FleetStateCode, SpotInstanceState};

use super::super::Ec2;
use super::Consumer;
use super::templates::TemplatePin;
use crate::error::Error;
use crate::model::{ImageUser, UserKind};
use futures::StreamExt as _;

impl Ec2 {
    /// Every consumer that names launch template versions or images: Auto Scaling groups,
    /// fleets and spot requests.
    pub(super) async fn template_consumers(&self) -> Result<Vec<Consumer>, Error> {
        let (groups, fleets, spot_fleets, spot_requests) = futures::try_join!(
            self.auto_scaling_groups(),
            self.fleets(),
            self.spot_fleet_requests(),
            self.spot_instance_requests(),
        )?;
        Ok(groups
            .into_iter()
            .chain(fleets)
            .chain(spot_fleets)
            .chain(spot_requests)
            .collect())
    }

    /// EC2 Fleets that are not deleted (a deleted one's running instances are instances).
    async fn fleets(&self) -> Result<Vec<Consumer>, Error> {
        let mut pages = std::pin::pin!(self.pages(
            |token| self.ec2().describe_fleets().set_next_token(token).send(),
            aws_sdk_ec2::operation::describe_fleets::DescribeFleetsOutput::next_token,
        ));
        let mut consumers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("DescribeFleets", &err))?;
            for fleet in page.fleets() {
                let live = matches!(
                    fleet.fleet_state(),
                    None | Some(FleetStateCode::Submitted | FleetStateCode::Active | FleetStateCode::Modifying)
                );
                if !live {
                    continue;
                }
                let mut consumer = Consumer {
                    user: ImageUser::new(UserKind::Fleet, fleet.fleet_id().unwrap_or_default()),
                    pins: Vec::new(),
                    images: Vec::new(),
                };
                for config in fleet.launch_template_configs() {
                    consumer.pins.extend(config.launch_template_specification().map(pin));
                    consumer.images.extend(
                        config
                            .overrides()
                            .iter()
                            .filter_map(|o| o.image_id())
                            .map(str::to_owned),
                    );
                }
                consumers.push(consumer);
            }
        }
        Ok(consumers)
    }

    /// Spot Fleet requests that are not cancelled: they replace interrupted instances.
    async fn spot_fleet_requests(&self) -> Result<Vec<Consumer>, Error> {
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.ec2().describe_spot_fleet_requests())
                    .max_results(1000)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_ec2::operation::describe_spot_fleet_requests::DescribeSpotFleetRequestsOutput::next_token,
        ));
        let mut consumers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("DescribeSpotFleetRequests", &err))?;
            for request in page.spot_fleet_request_configs() {
                let live = matches!(
                    request.spot_fleet_request_state(),
                    None | Some(BatchState::Submitted | BatchState::Active | BatchState::Modifying)
                );
                let Some(config) = request.spot_fleet_request_config().filter(|_| live) else {
                    continue;
                };
                consumers.push(Consumer {
                    user: ImageUser::new(
                        UserKind::SpotFleetRequest,
                        request.spot_fleet_request_id().unwrap_or_default(),
                    ),
                    pins: config
                        .launch_template_configs()
                        .iter()
                        .filter_map(|c| c.launch_template_specification())
                        .map(pin)
                        .collect(),
                    images: config
                        .launch_specifications()
                        .iter()
                        .filter_map(|s| s.image_id())
                        .map(str::to_owned)
                        .collect(),
                });
            }
        }
        Ok(consumers)
    }

    /// Spot Instance requests still open, active or disabled: a persistent one launches again
    /// after an interruption.
    async fn spot_instance_requests(&self) -> Result<Vec<Consumer>, Error> {
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.ec2().describe_spot_instance_requests())
                    .max_results(1000)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_ec2::operation::describe_spot_instance_requests::DescribeSpotInstanceRequestsOutput::next_token,
        ));
        let mut consumers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("DescribeSpotInstanceRequests", &err))?;
            for request in page.spot_instance_requests() {
                let live = matches!(
                    request.state(),
                    None | Some(SpotInstanceState::Open | SpotInstanceState::Active | SpotInstanceState::Disabled)
                );
                let Some(image) = request
                    .launch_specification()
                    .and_then(|s| s.image_id())
                    .filter(|_| live)
                else {
                    continue;
                };
                consumers.push(Consumer {
                    user: ImageUser::new(
                        UserKind::SpotInstanceRequest,
                        request.spot_instance_request_id().unwrap_or_default(),
                    ),
                    pins: Vec::new(),
                    images: vec![image.to_owned()],
                });
            }
        }
        Ok(consumers)
    }
}

fn pin(spec: &FleetLaunchTemplateSpecification) -> TemplatePin {
    TemplatePin {
        id: spec.launch_template_id().map(str::to_owned),
        name: spec.launch_template_name().map(str::to_owned),
        version: spec.version().map(str::to_owned),
    }
}
