// `@MemberwiseInit`'s expansions: what the initialiser takes, in which order, with which defaults, and the errors
// for declarations it cannot serve.

import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacros
import SwiftSyntaxMacrosGenericTestSupport
import SwitchyardMacros
import Testing

@Suite("@MemberwiseInit")
struct MemberwiseInitMacroTests {
    let macros: [String: MacroSpec] = ["MemberwiseInit": MacroSpec(type: MemberwiseInitMacro.self)]

    func expect(
        _ source: String,
        expands expected: String,
        diagnostics: [DiagnosticSpec] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        assertMacroExpansion(
            source,
            expandedSource: expected,
            diagnostics: diagnostics,
            macroSpecs: macros,
            failureHandler: { Issue.record(Comment(rawValue: $0.message), sourceLocation: sourceLocation) }
        )
    }

    @Test("a var's initial value is its default, an optional var defaults to nil, a plain var has none")
    func defaults() {
        expect(
            """
            @MemberwiseInit
            public struct Counts {
                public var name: String
                public var calls: UInt64 = 0
                public var p99: Double?
            }
            """,
            expands: """
                public struct Counts {
                    public var name: String
                    public var calls: UInt64 = 0
                    public var p99: Double?

                    public init(
                        name: String,
                        calls: UInt64 = 0,
                        p99: Double? = nil
                    ) {
                        self.name = name
                        self.calls = calls
                        self.p99 = p99
                    }
                }
                """
        )
    }

    @Test("left out: a let or private property with a value, static and computed properties; an observed var is in")
    func leftOut() {
        expect(
            """
            @MemberwiseInit
            public struct Kinds {
                public let kind: String
                public let fixed = 3
                public static var shared = 1
                public var total: Int { fixed }
                private var cache: [Int] = []
                public var watched: Int = 1 { didSet {} }
            }
            """,
            expands: """
                public struct Kinds {
                    public let kind: String
                    public let fixed = 3
                    public static var shared = 1
                    public var total: Int { fixed }
                    private var cache: [Int] = []
                    public var watched: Int = 1 { didSet {} }

                    public init(
                        kind: String,
                        watched: Int = 1
                    ) {
                        self.kind = kind
                        self.watched = watched
                    }
                }
                """
        )
    }

    @Test("an optional let has no default; a stored closure escapes")
    func letsAndClosures() {
        expect(
            """
            @MemberwiseInit(.package)
            struct Hooks {
                let label: String?
                var onEnd: @Sendable (Int) -> Void
                var onStart: (() -> Void)?
            }
            """,
            expands: """
                struct Hooks {
                    let label: String?
                    var onEnd: @Sendable (Int) -> Void
                    var onStart: (() -> Void)?

                    package init(
                        label: String?,
                        onEnd: @escaping @Sendable (Int) -> Void,
                        onStart: (() -> Void)? = nil
                    ) {
                        self.label = label
                        self.onEnd = onEnd
                        self.onStart = onStart
                    }
                }
                """
        )
    }

    @Test("an internal initialiser; a type with no settable property gets init()")
    func accessAndEmpty() {
        expect(
            """
            @MemberwiseInit(.internal)
            struct Empty {
                let limit = 4
            }
            """,
            expands: """
                struct Empty {
                    let limit = 4

                    init() {
                    }
                }
                """
        )
    }

    @Test("a property without a type annotation, an enum and an unknown access level are refused by name")
    func refusals() {
        expect(
            """
            @MemberwiseInit
            struct Inferred {
                var count = 0
            }
            """,
            expands: """
                struct Inferred {
                    var count = 0
                }
                """,
            diagnostics: [
                DiagnosticSpec(
                    message: "@MemberwiseInit: 'count' needs a type annotation; the macro cannot infer types",
                    line: 1,
                    column: 1
                )
            ]
        )
        expect(
            """
            @MemberwiseInit
            enum Kind {
                case a
            }
            """,
            expands: """
                enum Kind {
                    case a
                }
                """,
            diagnostics: [
                DiagnosticSpec(
                    message: "@MemberwiseInit applies to a struct or a final class; got another declaration",
                    line: 1,
                    column: 1
                )
            ]
        )
        expect(
            """
            @MemberwiseInit(.open)
            struct S {
                var a: Int
            }
            """,
            expands: """
                struct S {
                    var a: Int
                }
                """,
            diagnostics: [
                DiagnosticSpec(
                    message: "@MemberwiseInit: expected .public, .package or .internal; got '.open'",
                    line: 1,
                    column: 1
                )
            ]
        )
    }
}
