// The implementation of `@MemberwiseInit` (declared in SwitchyardCore): the initialiser Swift synthesises for a
// struct, at the access level the type needs. Swift gives a struct an internal memberwise initialiser only, so every
// public configuration, admin-API and statistics type would otherwise spell one out by hand: each stored property
// named three times, kept in step by hand whenever a field is added.

import SwiftCompilerPlugin
public import SwiftSyntax
import SwiftSyntaxBuilder
public import SwiftSyntaxMacros

/// Adds `init(…)` taking every stored property that can still be set, in declaration order, as Swift's synthesised
/// memberwise initialiser does: a `var` with an initial value becomes a parameter with that default, an optional
/// `var` without one defaults to `nil`, a `let` with an initial value is left out, and a function-typed parameter is
/// `@escaping`. A private property with an initial value keeps it. The argument is the initialiser's access level (`.public`, `.package` or `.internal`).
public struct MemberwiseInitMacro: MemberMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingMembersOf declaration: some DeclGroupSyntax,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard declaration.is(StructDeclSyntax.self) || declaration.is(ClassDeclSyntax.self) else {
            throw MacroError("@MemberwiseInit applies to a struct or a final class; got another declaration")
        }
        let access = try accessLevel(of: node)
        var parameters: [String] = []
        var assignments: [String] = []
        for member in declaration.memberBlock.members {
            guard let variable = member.decl.as(VariableDeclSyntax.self), isStored(variable) else { continue }
            let isLet = variable.bindingSpecifier.tokenKind == .keyword(.let)
            let isPrivate = variable.modifiers.contains { ["private", "fileprivate"].contains($0.name.text) }
            for binding in variable.bindings {
                guard let name = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier.trimmedDescription
                else {
                    throw MacroError(
                        "@MemberwiseInit: a stored property must be a plain name; got '\(binding.pattern.trimmed)'"
                    )
                }
                // A constant with a value is set already; a private property with a value keeps it (it is not
                // the callers' to choose). A private property without one is a parameter like any other.
                if (isLet || isPrivate) && binding.initializer != nil { continue }
                guard let type = binding.typeAnnotation?.type else {
                    throw MacroError("@MemberwiseInit: '\(name)' needs a type annotation; the macro cannot infer types")
                }
                var parameter = "\(name): \(escaping(type))\(type.trimmedDescription)"
                if let initial = binding.initializer?.value {
                    parameter += " = \(initial.trimmedDescription)"
                } else if !isLet && isOptional(type) {
                    parameter += " = nil"
                }
                parameters.append(parameter)
                assignments.append("self.\(name) = \(name)")
            }
        }
        let prefix = access.isEmpty ? "" : "\(access) "
        if parameters.isEmpty { return ["\(raw: prefix)init() {}"] }
        let signature = "(\n" + parameters.joined(separator: ",\n") + "\n)"
        return ["\(raw: prefix)init\(raw: signature) {\n\(raw: assignments.joined(separator: "\n"))\n}"]
    }

    /// The initialiser's access level from the attribute's argument (`.public` when there is none).
    static func accessLevel(of node: AttributeSyntax) throws -> String {
        guard case .argumentList(let arguments) = node.arguments, let first = arguments.first else { return "public" }
        guard let member = first.expression.as(MemberAccessExprSyntax.self) else {
            throw MacroError("@MemberwiseInit: expected .public, .package or .internal; got '\(first.expression)'")
        }
        switch member.declName.baseName.text {
        case "public": return "public"
        case "package": return "package"
        case "internal": return ""
        case let other:
            throw MacroError("@MemberwiseInit: expected .public, .package or .internal; got '.\(other)'")
        }
    }

    /// Whether the declaration stores a value: not static, not lazy, not computed.
    static func isStored(_ variable: VariableDeclSyntax) -> Bool {
        let skipped: Set<String> = ["static", "class", "lazy"]
        if variable.modifiers.contains(where: { skipped.contains($0.name.text) }) { return false }
        return variable.bindings.allSatisfy { binding in
            guard let accessors = binding.accessorBlock?.accessors else { return true }
            switch accessors {
            case .getter: return false
            case .accessors(let list):
                // Observers (`willSet`, `didSet`) keep storage; `get`, `set`, `_read` and `_modify` do not.
                return list.allSatisfy { ["willSet", "didSet"].contains($0.accessorSpecifier.text) }
            }
        }
    }

    static func isOptional(_ type: TypeSyntax) -> Bool {
        type.is(OptionalTypeSyntax.self) || type.is(ImplicitlyUnwrappedOptionalTypeSyntax.self)
            || type.as(IdentifierTypeSyntax.self)?.name.text == "Optional"
    }

    /// `@escaping ` for a function type (a parameter of function type must escape to be stored).
    static func escaping(_ type: TypeSyntax) -> String {
        var bare = type
        if let attributed = type.as(AttributedTypeSyntax.self) {
            if attributed.attributes.contains(where: { $0.trimmedDescription == "@escaping" }) { return "" }
            bare = attributed.baseType
        }
        return bare.is(FunctionTypeSyntax.self) ? "@escaping " : ""
    }
}

/// A misuse of the macro, reported at the attribute.
struct MacroError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@main
struct SwitchyardMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [MemberwiseInitMacro.self]
}
