//! onedoor-lab: the lab (to be written).
