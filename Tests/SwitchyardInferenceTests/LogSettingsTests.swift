// LogSettings: Triton's keys and Switchyard's `log_level` map onto the one swift-log level, restating what is
// reported changes nothing, and every bad key or value is refused by name.

import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardInference

@Suite struct LogSettingsTests {
    typealias Value = SettingsRPCs.LogValue

    @Test(
        arguments: [
            // (current level, changes, expected level)
            (Logger.Level.info, [String: Value](), Logger.Level.info),
            (.info, ["log_verbose_level": .uint32(1)], .debug),
            (.info, ["log_verbose_level": .uint32(7)], .trace),
            (.debug, ["log_verbose_level": .uint32(0)], .info),
            (.info, ["log_info": .bool(false)], .warning),
            (.info, ["log_info": .bool(false), "log_warning": .bool(false)], .error),
            (.info, ["log_info": .bool(false), "log_warning": .bool(false), "log_error": .bool(false)], .critical),
            (.error, ["log_info": .bool(true)], .info),
            (.warning, ["log_level": .string("notice")], .notice),
            (.info, ["log_level": .string("trace"), "log_info": .bool(false)], .trace),
            // Restating the reported settings keeps a level Triton's keys cannot name.
            (
                .notice, ["log_info": .bool(false), "log_warning": .bool(true), "log_verbose_level": .uint32(0)],
                .notice
            ),
            (.notice, ["log_file": .string(""), "log_format": .string("default")], .notice),
        ] as [(Logger.Level, [String: Value], Logger.Level)]
    )
    func levels(current: Logger.Level, changes: [String: Value], expected: Logger.Level) throws {
        #expect(try SettingsRPCs.level(applying: changes, to: current) == expected)
    }

    @Test(
        arguments: [
            (
                ["log_file": Value.string("/var/log/x")],
                "settings['log_file']: this server logs to standard error; expected '', got '/var/log/x'"
            ),
            (
                ["log_format": .string("ISO8601")],
                "settings['log_format']: expected 'default' (the one format), got 'ISO8601'"
            ),
            (
                ["log_level": .string("loud")],
                "settings['log_level']: expected one of trace, debug, info, notice, warning, error, critical, got 'loud'"
            ),
            (["log_info": .uint32(1)], "settings['log_info']: expected bool_param"),
            (["log_verbose_level": .bool(true)], "settings['log_verbose_level']: expected uint32_param"),
            (["log_level": .bool(true)], "settings['log_level']: expected string_param"),
            (
                ["colour": .bool(true)],
                "settings['colour']: unknown setting; expected one of log_error, log_file, log_format, log_info, log_level, log_verbose_level, log_warning"
            ),
        ] as [([String: Value], String)]
    )
    func refusals(changes: [String: Value], message: String) {
        let error = #expect(throws: SwitchyardError.self) { try SettingsRPCs.level(applying: changes, to: .info) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == message)
    }

    @Test func reportFollowsTheLevel() {
        let report = Dictionary(uniqueKeysWithValues: SettingsRPCs.report(.warning))
        #expect(report["log_info"] == .bool(false))
        #expect(report["log_warning"] == .bool(true))
        #expect(report["log_error"] == .bool(true))
        #expect(report["log_verbose_level"] == .uint32(0))
        #expect(report["log_level"] == .string("warning"))
        #expect(Dictionary(uniqueKeysWithValues: SettingsRPCs.report(.trace))["log_verbose_level"] == .uint32(2))
    }

    @Test func theSwitchSetsEveryLoggersLevel() {
        let level = LogLevelSwitch(.info)
        let logger = Logger(label: "a") { _ in level.handler(StreamLogHandler.standardError(label: "a")) }
        #expect(logger.logLevel == .info)
        level.level = .error
        #expect(logger.logLevel == .error)
        var other = logger
        other.logLevel = .debug
        #expect(level.level == .debug)
    }
}
