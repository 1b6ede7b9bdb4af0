public import WSCore

/// An extension negotiator for tests: it offers the given elements, accepts the first offer
/// as it is, and as a client accepts any answer whose parameters it offered. It changes no
/// frames; it exercises the negotiation interface only.
public struct WSTestExtension: WSExtensionNegotiator {
    public var extensionName: String
    public var offerList: [WSExtensionElement]

    /// - Parameters:
    ///   - name: the extension token.
    ///   - offers: what a client offers (defaults to the bare name).
    public init(name: String, offers: [WSExtensionElement] = []) {
        extensionName = name
        offerList = offers.isEmpty ? [WSExtensionElement(name: name)] : offers
    }

    public func offers() -> [WSExtensionElement] { offerList }

    public func accept(offers: [WSExtensionElement]) -> WSExtensionElement? { offers.first }

    public func validate(response: WSExtensionElement, offered: [WSExtensionElement]) -> String? {
        let names = Set(offered.flatMap { $0.parameters.map(\.name) })
        return response.parameters.first { !names.contains($0.name) }.map { "parameter \($0.name) was not offered" }
    }
}
