// Triton's SystemSharedMemoryStatus, SystemSharedMemoryRegister and SystemSharedMemoryUnregister over the
// registered regions (see SharedMemory.swift). The front end refuses register and unregister from beyond loopback.

import SwitchyardCore
import SwitchyardProto

/// Answers the system shared-memory RPCs.
struct SharedMemoryRPCs {
    let regions: SharedMemoryRegions

    /// Answers `rpc` with a serialized response.
    /// - Throws: `invalidArgument` naming the field for a bad registration; `notFound` for the status of a name
    ///   not registered; `failedPrecondition` for a name already registered.
    func answer(_ rpc: InferenceMethod, message: UnsafeRawBufferPointer) throws(SwitchyardError) -> [UInt8] {
        let bytes = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        switch rpc {
        case .systemSharedMemoryRegister:
            guard let request = inference__system_shared_memory_register_request__unpack(nil, message.count, bytes)
            else { throw malformed("SystemSharedMemoryRegisterRequest", message) }
            let name = swiftString(request.pointee.name)
            let key = swiftString(request.pointee.key)
            let offset = request.pointee.offset
            let byteSize = request.pointee.byte_size
            inference__system_shared_memory_register_request__free_unpacked(request, nil)
            try regions.register(try SharedMemoryRegion(name: name, key: key, offset: offset, byteSize: byteSize))
            var response = Inference__SystemSharedMemoryRegisterResponse()
            inference__system_shared_memory_register_response__init(&response)
            return packMessage(&response)
        case .systemSharedMemoryUnregister:
            guard let request = inference__system_shared_memory_unregister_request__unpack(nil, message.count, bytes)
            else { throw malformed("SystemSharedMemoryUnregisterRequest", message) }
            let name = swiftString(request.pointee.name)
            inference__system_shared_memory_unregister_request__free_unpacked(request, nil)
            regions.unregister(name)
            var response = Inference__SystemSharedMemoryUnregisterResponse()
            inference__system_shared_memory_unregister_response__init(&response)
            return packMessage(&response)
        case .systemSharedMemoryStatus:
            guard let request = inference__system_shared_memory_status_request__unpack(nil, message.count, bytes)
            else { throw malformed("SystemSharedMemoryStatusRequest", message) }
            let name = swiftString(request.pointee.name)
            inference__system_shared_memory_status_request__free_unpacked(request, nil)
            let listed = try regions.status(name)
            return withBumpAllocator { arena in
                let (entries, pointers) = arena.mapEntries(
                    listed.count,
                    inference__system_shared_memory_status_response__regions_entry__init
                )
                let statuses = arena.allocate(
                    Inference__SystemSharedMemoryStatusResponse__RegionStatus.self,
                    count: listed.count
                )
                for (index, region) in listed.enumerated() {
                    inference__system_shared_memory_status_response__region_status__init(statuses + index)
                    statuses[index].name = arena.string(region.name)
                    statuses[index].key = arena.string(region.key)
                    statuses[index].offset = UInt64(region.offset)
                    statuses[index].byte_size = UInt64(region.byteSize)
                    entries[index].key = arena.string(region.name)
                    entries[index].value = statuses + index
                }
                var response = Inference__SystemSharedMemoryStatusResponse()
                inference__system_shared_memory_status_response__init(&response)
                response.n_regions = listed.count
                response.regions = pointers
                return packMessage(&response)
            }
        default:
            throw .internal("\(rpc.path) is not a system shared-memory RPC")
        }
    }

    private func malformed(_ type: String, _ message: UnsafeRawBufferPointer) -> SwitchyardError {
        .invalidArgument("malformed \(type): \(message.count) bytes are not a valid protobuf encoding of it")
    }
}
