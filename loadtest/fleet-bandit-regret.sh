#!/usr/bin/env bash
# Fleet-wide bandits: the regret of three replicas that exchange their rewards every 25 of their own calls (the
# 250 ms exchange round at 100 calls/s per replica) against one replica serving every call (the anchor, same run)
# and three replicas learning alone; 6000 calls, arms rewarding 50/55/60 %, mean of 12 seeds, Thompson and UCB1.
# A seeded simulation of the same Bandit code the gateway runs (absorb, discount and window included).
#   loadtest/fleet-bandit-regret.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests >/dev/null
swift test --skip-build --filter FleetBanditRegret 2>&1 | grep "fleet bandit regret"
