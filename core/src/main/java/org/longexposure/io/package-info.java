/**
 * Reading and writing the files a run consumes and produces, at the level of bytes and names: no model
 * knowledge lives here (architecture layer 2; imports only {@code org.longexposure.tensor}, the JDK and Jackson).
 * {@link org.longexposure.io.InputFormatException} is the one exception for bad user input across all io
 * packages: a single line naming the file, the field or tensor, what was found and what was expected.
 */
package org.longexposure.io;
