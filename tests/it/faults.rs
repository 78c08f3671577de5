//! Faults survived: `kill -9` of pack, load and push at many points, a full disk during pack,
//! and the engine cut off during load and up. After each fault a re-run finishes the job, the
//! output path never holds a partial bundle, and the store holds only blobs whose bytes match.
