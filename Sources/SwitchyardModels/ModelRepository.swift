// The model repository on disk: `<root>/<model>/<version>/model.onnx` plus an optional
// `<root>/<model>/config.yaml`. Scanning is separate from loading so that a listing never runs a model.

import Foundation
public import SwitchyardCore
import Yams

/// One model version found on disk.
public struct RepositoryVersion: Sendable, Hashable {
    /// Version name: the directory name, a positive integer.
    public var version: String
    /// Path of the ONNX file.
    public var path: String
}

/// One model found on disk, with its settings and versions.
public struct RepositoryModel: Sendable, Hashable {
    /// Model name: the directory name.
    public var name: String
    /// Settings from `config.yaml`, or the defaults.
    public var configuration: ModelConfiguration
    /// Versions in ascending numeric order.
    public var versions: [RepositoryVersion]
}

/// A model repository directory.
@MemberwiseInit
public struct ModelRepository: Sendable {
    /// The repository's root directory.
    public var root: String

    /// Lists the repository's models.
    /// - Throws: `SwitchyardError.invalidArgument` when the root is missing, or a `config.yaml` does not parse or
    ///   validate (naming the file and every problem).
    public func scan() throws -> [RepositoryModel] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SwitchyardError.invalidArgument("model repository '\(root)': expected a directory, found none")
        }
        var models: [RepositoryModel] = []
        for name in try fm.contentsOfDirectory(atPath: root).sorted() where !name.hasPrefix(".") {
            let modelDir = (root as NSString).appendingPathComponent(name)
            guard fm.fileExists(atPath: modelDir, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let configuration = try Self.loadConfiguration(
                at: (modelDir as NSString).appendingPathComponent("config.yaml")
            )
            var versions: [RepositoryVersion] = []
            for entry in try fm.contentsOfDirectory(atPath: modelDir) {
                guard let number = Int(entry), number > 0 else { continue }
                let versionDir = (modelDir as NSString).appendingPathComponent(entry)
                guard fm.fileExists(atPath: versionDir, isDirectory: &isDirectory), isDirectory.boolValue else {
                    continue
                }
                // A version directory without its model.onnx is listed all the same: loading it fails and says
                // so, instead of the version silently not existing.
                let file = (versionDir as NSString).appendingPathComponent("model.onnx")
                versions.append(RepositoryVersion(version: String(number), path: file))
            }
            versions.sort { Int($0.version)! < Int($1.version)! }
            if !versions.isEmpty {
                models.append(RepositoryModel(name: name, configuration: configuration, versions: versions))
            }
        }
        return models
    }

    /// Reads a model's `config.yaml`; a missing file gives the defaults.
    /// - Throws: `SwitchyardError.invalidArgument` naming the file and every problem found.
    public static func loadConfiguration(at path: String) throws -> ModelConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else { return ModelConfiguration() }
        let text = String(decoding: data, as: UTF8.self)
        let configuration: ModelConfiguration
        do {
            configuration =
                text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                ? ModelConfiguration() : try YAMLDecoder().decode(ModelConfiguration.self, from: text)
        } catch {
            throw SwitchyardError.invalidArgument("\(path): \(error)")
        }
        let problems = configuration.validate()
        guard problems.isEmpty else {
            throw SwitchyardError.invalidArgument("\(path): " + problems.joined(separator: "; "))
        }
        return configuration
    }
}
