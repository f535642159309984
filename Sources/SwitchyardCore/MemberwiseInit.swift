// `@MemberwiseInit`: the memberwise initialiser Swift synthesises for a struct, at the access level a public type
// needs (Swift's own is internal). Implemented in SwitchyardMacros.

/// The access level of the initialiser `@MemberwiseInit` adds.
public enum MemberwiseAccess: Sendable {
    case `public`
    case `package`
    case `internal`
}

/// Adds an initialiser taking every stored property that can still be set, in declaration order, as Swift's
/// synthesised memberwise initialiser does: a `var`'s initial value is its parameter's default, an optional `var`
/// without one defaults to `nil`, a `let` with an initial value is left out.
///
/// - Parameter access: the initialiser's access level (`.public` by default).
@attached(member, names: named(init))
public macro MemberwiseInit(_ access: MemberwiseAccess = .public) =
    #externalMacro(module: "SwitchyardMacros", type: "MemberwiseInitMacro")
