//! The strategies' next move once a step's checks passed: A/B testing and blue/green by
//! iterations, the canary by weight steps, and the traffic shift back to the primary.

use super::{Flow, Tick};
use crate::action::{Action, Level};
use crate::messages::{self as msg};
use crate::observe::Routes;
use crate::status::Phase;
use crate::weights::{self, TOTAL_WEIGHT};

impl Tick<'_> {
    /// The strategy's next move after a successful analysis step.
    pub(super) fn next_move(&mut self, routes: Routes) -> Flow {
        let a = self.analysis();
        let mut iterations = a.iterations();
        let mut ab = !a.r#match.is_empty();
        if self.provider == "kubernetes" {
            if ab {
                self.emit(Level::Warn, msg::KUBERNETES_NO_AB);
                ab = false;
            }
            if iterations < 1 {
                self.emit(Level::Warn, msg::KUBERNETES_NO_PROGRESSIVE);
                self.emit(Level::Warn, msg::KUBERNETES_ITERATIONS);
                iterations = 10;
            }
        }
        if iterations > 0 && ab {
            self.ab_testing(iterations)
        } else if iterations > 0 {
            self.blue_green(iterations, routes)
        } else {
            self.canary_step(routes)
        }
    }

    pub(super) fn ab_testing(&mut self, iterations: u32) -> Flow {
        if iterations > self.status.iterations {
            self.push(Action::SetRoutes {
                primary: 0,
                canary: TOTAL_WEIGHT,
                mirrored: false,
            });
            self.status.iterations = self.status.iterations.saturating_add(1);
            self.emit_iteration(iterations);
            return Ok(());
        }
        if self.promotion_confirmed()? {
            self.promote();
        }
        Ok(())
    }

    pub(super) fn blue_green(&mut self, iterations: u32, routes: Routes) -> Flow {
        let mesh = self.provider != "kubernetes";
        let mirror = self.analysis().mirror;
        if iterations > self.status.iterations {
            if mesh && mirror && !routes.mirrored {
                self.push(Action::SetRoutes {
                    primary: TOTAL_WEIGHT,
                    canary: 0,
                    mirrored: true,
                });
            }
            self.status.iterations = self.status.iterations.saturating_add(1);
            self.emit_iteration(iterations);
            return Ok(());
        }
        if !self.promotion_confirmed()? {
            return Ok(());
        }
        if iterations == self.status.iterations {
            if mesh {
                let text = if mirror {
                    msg::STOP_MIRRORING
                } else {
                    msg::ROUTING_ALL_TO_CANARY
                };
                self.emit(Level::Info, text);
                self.push(Action::SetRoutes {
                    primary: 0,
                    canary: TOTAL_WEIGHT,
                    mirrored: false,
                });
            }
            // One more analysed step with all traffic on the canary, then promotion.
            self.status.iterations = self.status.iterations.saturating_add(1);
            return Ok(());
        }
        self.promote();
        Ok(())
    }

    pub(super) fn canary_step(&mut self, routes: Routes) -> Flow {
        let a = self.analysis();
        let step = weights::next_step_weight(a, routes.canary);
        if step == 0 {
            return Ok(());
        }
        if !routes.mirrored
            && !matches!(
                self.phase(),
                Phase::Promoting | Phase::WaitingPromotion | Phase::Finalising
            )
            && !self.traffic_increase_confirmed()?
        {
            return Ok(());
        }
        if routes.canary < a.max_weight() {
            let (canary, mirrored) = if a.mirror && routes.canary == 0 {
                if routes.mirrored {
                    (step, false)
                } else {
                    (0, true)
                }
            } else {
                (routes.canary.saturating_add(step).min(TOTAL_WEIGHT), false)
            };
            self.push(Action::SetRoutes {
                primary: TOTAL_WEIGHT - canary,
                canary,
                mirrored,
            });
            self.status.canary_weight = canary;
            self.emit(
                Level::Info,
                msg::advance_weight(self.c.name, self.c.namespace, canary),
            );
            return Ok(());
        }
        if self.promotion_confirmed()? {
            self.promote();
        }
        Ok(())
    }

    /// After `Promote`: moves traffic back to the primary, at once or by
    /// `stepWeightPromotion`, then enters `Finalising`.
    pub(super) fn shift_traffic_to_primary(&mut self, routes: Routes) {
        let step = self.analysis().step_weight_promotion();
        if self.provider == "kubernetes" {
            self.set_phase(Phase::Finalising);
        } else if step == 0 || routes.canary == 0 {
            self.emit(Level::Info, msg::ROUTING_ALL_TO_PRIMARY);
            self.all_to_primary();
            self.set_phase(Phase::Finalising);
        } else {
            let canary = routes.canary.saturating_sub(step);
            let primary = TOTAL_WEIGHT - canary;
            self.push(Action::SetRoutes {
                primary,
                canary,
                mirrored: false,
            });
            self.emit(
                Level::Info,
                msg::advance_primary_weight(self.c.name, self.c.namespace, primary),
            );
            if primary == TOTAL_WEIGHT {
                self.set_phase(Phase::Finalising);
            } else {
                self.status.canary_weight = canary;
            }
        }
    }
}
