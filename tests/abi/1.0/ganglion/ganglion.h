/* The whole ganglion plugin SDK in one include. */
#ifndef GANGLION_GANGLION_H
#define GANGLION_GANGLION_H

#include <ganglion/abi.h>
#include <ganglion/host.h>
#include <ganglion/tier.h>
#include <ganglion/processor.h>
#include <ganglion/executor.h>
#include <ganglion/sensor.h>

#endif
