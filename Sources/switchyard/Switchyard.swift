// The `switchyard` command: `serve` runs the gateway; `models` inspects a model repository; `routes`,
// `models list` and `shadow` talk to a running gateway's admin API.

import ArgumentParser

@main
struct Switchyard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A model-serving gateway speaking the Open Inference Protocol over gRPC.",
        version: "0.1.0",
        subcommands: [
            Serve.self, Models.self, Routes.self, Rollout.self, Shadow.self, Drift.self, Fleet.self, Config.self,
        ],
        defaultSubcommand: Serve.self
    )
}
