/// Strings from outside (device strings, file contents, names in profiles, recordings) are shown on a
/// terminal only escaped: a line break could print a line dfuhop never wrote (a fake "verified"), and a
/// control character, ESC, a C1 control or a bidirectional override could move the cursor, recolour or
/// rewrite what the operator reads (ECMA-48 §5; Unicode UAX #9 for the bidi controls; UAX #14 for the line
/// and paragraph separators). `Output` passes every line it prints through `escaped`, so no external
/// string reaches the terminal any other way; text dfuhop composes as several lines is printed line by
/// line (`Output.print(lines:)`). JSON output is not touched: JSONSerialization already escapes C0 controls
/// and a JSON reader must get the exact string.
enum TerminalText {
    /// One line for the terminal: every unsafe character, line breaks and tabs included, as `\xNN` or
    /// `\u{NNNN}`.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if !isUnsafe(scalar) {
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

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true // C0 (tab, LF, CR among them), DEL, C1 (0x85 is NEL, 0x9B is CSI)
        case 0x2028, 0x2029: true // line and paragraph separators
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true // bidi marks, embeddings, overrides, isolates
        default: false
        }
    }
}
