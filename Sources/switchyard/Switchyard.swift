// The `switchyard` command: `serve` runs the gateway; `models` inspects a model repository; `routes`,
// `models list` and `shadow` talk to a running gateway's admin API.

import ArgumentParser
import SwitchyardCore

@main
struct Switchyard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A model-serving gateway speaking the Open Inference Protocol over gRPC.",
        version: "0.1.0",
        subcommands: [
            Serve.self, Models.self, Routes.self, Rollout.self, Shadow.self, Drift.self, Fleet.self, Config.self,
            Tenants.self, Experiments.self,
        ],
        defaultSubcommand: Serve.self
    )

    /// Runs the parsed command. Synchronous commands (`serve` above all) run on the main thread before any other
    /// thread exists, as `serve`'s signal mask needs: every thread it starts inherits the blocked shutdown
    /// signals, which only its `sigwait` sees. The admin API's clients are async; they run in a task the main
    /// thread waits for.
    static func main() {
        do {
            var command = try parseAsRoot()
            guard let asyncCommand = command as? any AsyncParsableCommand else {
                try command.run()
                return
            }
            let outcome = ConditionLock<Result<Void, any Error>?>(nil)
            let finished = MonotonicCondition()
            // Detached: this function runs on the main actor, whose thread waits below.
            Task.detached {
                var command = asyncCommand
                let result: Result<Void, any Error>
                do {
                    try await command.run()
                    result = .success(())
                } catch {
                    result = .failure(error)
                }
                outcome.withLock { outcome in
                    outcome = result
                    finished.signal()
                }
            }
            try outcome.withLock(waitingOn: finished, while: { $0 == nil }) { $0! }.get()
        } catch {
            exit(withError: error)
        }
    }
}
