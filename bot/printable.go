package bot

import "strings"

// Printable is one line of text as every chat adapter sends it: valid
// UTF-8, without control characters (tabs stay) and without the Unicode
// controls that reorder text on screen. What the bot relays (a change's
// subject, a host's error) is written by others: a control character
// could end or corrupt a chat line, drive a terminal (escape sequences,
// a carriage return that prints over the line), and a bidirectional
// override (U+202E) could make a subject read as something it is not,
// as in "Trojan Source" (CVE-2021-42574).
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r < 0x20, r >= 0x7f && r < 0xa0: // C0, DEL, C1
			return -1
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			// Embeddings, overrides, isolates and the direction marks.
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}
