import Foundation
import Glibc
import Synchronization

/// Messages for people go to stderr, so stdout carries only the table.
enum Console {
    static let isTerminal = isatty(STDERR_FILENO) == 1

    static func note(_ message: String) {
        Progress.clearLine()
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

/// The progress line of a long sweep on stderr: rewritten in place on a
/// terminal; on a pipe or file, one line every 15 s so logs stay short.
final class Progress {
    let total: Int
    private var done = 0
    private let started = now()
    private var lastLine = 0.0
    /// Whether a progress line is on the terminal now (any thread may print a note).
    private static let lineVisible = Atomic<Bool>(false)

    init(total: Int) { self.total = total }

    func step(_ label: String) {
        done += 1
        let elapsed = now() - started
        var eta = ""
        if done > 1 {
            let remaining = elapsed / Double(done - 1) * Double(total - done + 1)
            eta = String(format: ", ~%.0f s left", remaining)
        }
        let line = String(format: "[%d/%d %3.0f%%] ", done, total, 100 * Double(done - 1) / Double(max(1, total)))
            + label + eta
        if Console.isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            Progress.lineVisible.store(true, ordering: .relaxed)
        } else if elapsed - lastLine >= 15 || done == 1 {
            lastLine = elapsed
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    func finish() {
        Progress.clearLine()
        let elapsed = now() - started
        FileHandle.standardError.write(Data(String(format: "%d cases in %.1f s\n", total, elapsed).utf8))
    }

    static func clearLine() {
        if lineVisible.exchange(false, ordering: .relaxed) {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        }
    }
}
