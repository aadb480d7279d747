/// Strings from outside (device strings, file contents, names in profiles) are shown on a terminal only
/// escaped: a control character, ESC, a C1 control or a bidirectional override could otherwise move the
/// cursor, recolour or rewrite what the operator reads (ECMA-48 §5; Unicode UAX #9 for the bidi
/// controls). JSON output is not touched: JSONSerialization already escapes C0 controls and a JSON
/// reader must get the exact string.
enum TerminalText {
    /// One field of outside text: every unsafe character, line breaks included, as `\xNN` or `\u{NNNN}`.
    static func escaped(_ text: String) -> String {
        escape(text, keepingLineBreaks: false)
    }

    /// Text dfuhop composed (lines and tabs are its own), with any unsafe character inside escaped.
    static func display(_ text: String) -> String {
        escape(text, keepingLineBreaks: true)
    }

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true // C0, DEL, C1 (0x9B is CSI)
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true // bidi marks, embeddings, overrides, isolates
        default: false
        }
    }

    private static func escape(_ text: String, keepingLineBreaks: Bool) -> String {
        func allowed(_ scalar: Unicode.Scalar) -> Bool {
            !isUnsafe(scalar) || (keepingLineBreaks && (scalar == "\n" || scalar == "\t"))
        }
        guard !text.unicodeScalars.allSatisfy(allowed) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if allowed(scalar) {
                result.append(scalar)
            } else {
                let digits = String(scalar.value, radix: 16, uppercase: true)
                let escape =
                    scalar.value <= 0xFF
                    ? "\\x" + (digits.count == 1 ? "0" : "") + digits
                    : "\\u{" + digits + "}"
                result.append(contentsOf: escape.unicodeScalars)
            }
        }
        return String(result)
    }
}
