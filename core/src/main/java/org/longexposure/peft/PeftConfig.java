package org.longexposure.peft;

/**
 * A parameter-efficient fine-tuning method's configuration. Sealed: every dispatch over methods is an exhaustive
 * switch, and a new method is one more record here (ARCHITECTURE.md rule C11).
 */
public sealed interface PeftConfig permits LoraConfig {
}
