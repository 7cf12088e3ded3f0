// Package files is the layer of open file kinds: one Go file per kind
// (reg.go, dir.go, chr.go, tty.go, memfd.go, eventfd.go, epoll.go,
// pipe.go, pidfd.go, pathonly.go; unix sockets, larger, in unix.go,
// unixcheck.go and unixload.go; TCP in tcp.go, tcprepair.go and
// tcphold.go; udp.go (UDP and UDP-Lite), ping.go, netlink.go (route
// sockets, and the names of the sockets refused), with inet.go for the
// options IP sockets share; timerfd.go, signalfd.go, inotify.go;
// pty.go, with its helper ptyqueues.go,
// holds the two ends of a pseudo-terminal, two kinds), each holding both
// halves of its kind, how it is found and dumped and how it is made
// again, registered in one table (table in kind.go). pkg/dump and
// pkg/restore call through the table and name no kind themselves, as
// CRIU's files.c calls its fdtype ops (files-reg.c, eventfd.c,
// pipes.c...).
//
// # Adding a kind
//
// Write one file, say pipe.go, with a type that implements Kind, add a
// value of it to table, and add its name to format's File kinds (the
// image's word for it, and format/SPEC.md). Nothing else changes: no
// switch in dump, restore or validate names a kind. Order in table
// matters only for Match: the first kind that says yes has the fd.
//
// What each method must do:
//
//   - Name: the kind's word in the image (File.Kind). Never reuse one:
//     an older procs-load refuses a file of a kind it does not know by
//     name, before it opens anything.
//   - Match: on the dump side, is this fd (open without O_PATH; see
//     Traits.OPath for those) mine? It looks only at what procfs read
//     (Target, Kind, Rdev, fdinfo), touches nothing and may be asked of
//     every fd. An fd no kind matches is refused by Classify, with a
//     reason a user understands ("a pipe", "a socket").
//   - Traits: the facts the engines act on without calling the kind
//     (shared per inode or one object per fd, opened by path, carried
//     contents, offset, what a deleted one needs, whether epoll can
//     watch it, whether it may be the executable or back a mapping).
//     A new kind usually has the zero Traits but for what it needs.
//
// Optional halves, as interfaces a kind implements or not:
//
//   - Describer (dump): records, in the File every fd and mapping of the
//     file points at, what the generic part (path, dev, ino, mode, size,
//     times) does not (a memfd's seals and owner).
//   - Dumper (dump, once per open file description, for its first fd in
//     the tree): records the kind's own state (an eventfd's counter, an
//     epoll's interest list, a pipe's unread bytes) in the kind's member
//     of its File, through Source. It runs while the tree is frozen and
//     must not change it; a state the kind cannot carry is a Refusal
//     (matches ErrUnsupported), never a half-written File.
//   - TreeChecker (dump, once every process is read): refuses what only
//     the whole tree shows (a pipe whose other end is held outside it).
//   - ImageValidator (restore, after every Validator): bounds what only
//     all the image's files of the kind show together (the inotify
//     watches whose descriptors the restore must reach).
//   - Validator (restore, first): checks what the kind adds to a file
//     of the image, which is untrusted: every number in range, every fd
//     it names present and of a kind it may name. Messages quote
//     strings from the image with safetext.Quote.
//   - Preparer (restore, in procs-load before the process exists):
//     readies file i through Loader: open and check it at its path
//     (OpenByPath), make a memfd, take the restorer's terminal, make a
//     pipe and fill it (Own), or run what needs the process's rights
//     on the opener's thread (AsProcess: inotify watches). The loader
//     then opens one description per open file description of the
//     image from it, and every process that has it takes it with
//     pidfd_getfd: no process opens a path.
//   - Maker (restore, in the process): makes an fd that has no path (an
//     eventfd, an epoll) with system calls run in the process through
//     Target, and returns its number there; the engine moves it to its
//     place and sets close-on-exec. It is made in the first process that
//     holds it; the loader then takes it (pidfd_getfd) for the later
//     processes that share it. A LoaderMaker (an eventfd) the loader
//     makes itself when it is in flight, and every process sharing it
//     takes that one. A LateMaker (a pidfd, an epoll, a timerfd) in
//     flight is taken from a process that holds it once every process
//     is built (Loader.Taken), or, when none does, made by the loader
//     then. A KeeperMaker (a pidfd on a reaped process) in flight that no
//     process holds is made by the first process holding a queue that
//     holds it, as it is built, for the loader to take.
//   - Linker (restore, second pass): once every fd of the process
//     exists, links what the process made to other objects (epoll
//     targets, which are fds of that process).
//   - Carrier (restore): a file that holds open file descriptions of its
//     own (files in flight in a unix socket's queue), which the engine
//     prepares and opens as the process holding the file does its fds',
//     for the kind to send them once every process's are open
//     (Loader.Later, Loader.Description).
//   - Pseudoterminal (restore engine): a pseudo-terminal's number, which
//     the engine places (a devpts instance of the tree's own when it is
//     taken), and the session it controls, which the engine makes it
//     the controlling terminal of (TIOCSCTTY in the session's leader as
//     soon as it leads it) with its foreground group.
//
// # Credentials
//
// Everything a Preparer opens or makes goes through the restore
// engine's opener (Loader.OpenByPath, Loader.MakeMemfd): a thread of
// procs-load with the restored process's file system ids, its groups
// and no capability, so that root restoring a user's process gives it
// nothing that user could not open or make. Only the restorer's own
// terminal is opened with the caller's rights (it is the caller's).
// Makers and Linkers run in the new process before it takes its own
// credentials (the restorer's then): they must create only objects
// that need no rights (no path, no privileged flag). A kind that opens a
// path is a Preparer, never a Maker.
//
// # Order of passes
//
// Dump: Classify every fd (refuse before touching anything); then, once
// frozen, each mapped file's File (Describe), then per fd: its File
// (Describe, once per file of a Shared kind), whether it shares an
// earlier fd's description (kcmp, the engine's, for every kind), and
// Dump.
// Restore: Validate (whole image) -> per process, in the image's order,
// with that process's opener: Prepare (each file it uses first), the
// loader's descriptions (one per open id) -> the processes are built;
// per process, makeFDs: take, Make or dup each fd in image order -> Link
// (each fd the process made) -> the rest of the process (signals,
// threads, creds...).
//
// Owners and signals of open files (F_SETOWN_EX, F_SETSIG), which any
// kind may have, are owner.go's: read on the dump side for the first fd
// of each open file description, checked against the tree and the
// image; the restore engine sets them (fdOwners).
//
// In the image (format 2.0) the files are the image's, shared by every
// process of the tree; each kind's state is a member of its File named
// after the kind ("eventfd", "epoll", "pipe"), and fds that share an open
// file description, in a process or across processes, have one open id.
package files
